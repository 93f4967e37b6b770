"""The change journal: which records were written or deleted since the last unification run read it.

    ControlTable  TENANT#<t>#CHANGES / C#<random>    source (name), tokens (string set of blind record tokens)

    journal = ChangeJournal(ddb, tables, tenant)
    journal.add("crm", tokens)          # after the records changed: a run that reads the entry sees the change
    changes = journal.read()            # -> list[Change], before the run reads records (later ones stay)
    journal.forget(changes)             # once the run has applied them
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from profilevault.storage.dynamo import DynamoDBClient, Tables, batch_write, from_item, key, query_prefix, to_item


@dataclass(frozen=True)
class Change:
    entry: str  # the journal entry's own ID, to forget it once applied
    source: str
    tokens: tuple[str, ...]


class ChangeJournal:
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._table, self._pk = ddb, tables.control, f"TENANT#{tenant}#CHANGES"

    def add(self, source: str, tokens: Iterable[str]) -> None:
        """Names records just written or deleted for the next unification run. Written after the change, so a run
        that reads the entry also sees the change; a run that misses it leaves it to the next one."""
        tokens = set(tokens)
        if tokens:
            self._ddb.put_item(TableName=self._table, Item=to_item({
                "pk": self._pk, "sk": f"C#{uuid.uuid4().hex}", "source": source, "tokens": tokens}))

    def read(self) -> list[Change]:
        entries = (from_item(i) for i in query_prefix(self._ddb, self._table, self._pk, "C#"))
        return [Change(e["sk"][len("C#"):], e["source"], tuple(sorted(e["tokens"]))) for e in entries]

    def forget(self, changes: Iterable[Change]) -> None:
        batch_write(self._ddb, self._table, [], [key(self._pk, f"C#{c.entry}") for c in changes])
