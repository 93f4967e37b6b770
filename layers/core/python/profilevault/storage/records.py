"""Source records: the sealed record items, their wrapped keys and their blind-index entries.

    RecordsTable  TENANT#<t>#SOURCE#<s> / REC#<token>     fmt, kid, payload (sealed record), ingestion_id,
                                                          ingested_at, row_number (the row of the ingestion's
                                                          file that wrote it), kept_at (when a full snapshot last
                                                          named it in a rejected row), index_refs (string set of
                                                          "<attr>#<hmac>")
    KeysTable     TENANT#<t>#SOURCE#<s> / REC#<token>#K#<kid>   wrapped_key (crypto-shredding deletes it)
    IndexTable    TENANT#<t>#IDX#<attr>#<hmac> / SOURCE#<s>#REC#<token>   kid of the write that put the entry

<token> is a blind index of the record ID (no record ID is stored in clear). An index entry is only a pointer: the
record item's own `index_refs` say which values it holds now (see `find`).

    records = RecordRepository(ddb, tables, tenant)          # built once in wiring
    address = records.address("crm", token)                  # where vault.seal_record binds a record
    put = records.put_sealed("crm", sealed)                  # keys, records, stale keys and index entries, journal
    put.new; put.before                                      # -> how many were new; {token: StoredRef} before
    before = records.refs("crm", tokens)                     # -> {token: StoredRef(kid, index_refs, ingestion_id,
                                                             #                      row_number)}
    record = records.get("crm", token)                       # -> SealedRecord | None (None: absent or shredded)
    for record in records.read("crm", tokens): ...           # those of `tokens` that exist and are readable
    for record in records.all("crm"): ...                    # every readable record of a source, page by page
    records.count("crm"); records.tokens("crm")              # -> int; [token]
    records.stamps("crm")                                    # -> [(token, the later of ingested_at, kept_at)]
    kept = records.keep("crm", tokens, now)                  # kept_at of those that exist -> how many
    deleted = records.delete("crm", tokens)                  # records, every key they had, their index entries
    members = records.find(IndexRef("email", digest))        # -> [(source, token)], with read repair

Every write and delete names the records it touched in the change journal (`storage.changes`) afterwards.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from profilevault.storage.changes import ChangeJournal
from profilevault.storage.dynamo import (
    BATCH_GET_MAX,
    DynamoDBClient,
    Item,
    Tables,
    batch_get,
    batch_write,
    from_item,
    is_conditional_failure,
    key,
    query_prefix,
    to_item,
    to_value,
)
from profilevault.storage.sealed import (
    Address,
    IndexRef,
    SealedRecord,
    data_item,
    document_of,
    get_with_key,
    key_item,
    key_key,
    with_keys,
)

RECORDS = "records"  # the logical table name bound into record ciphertexts
_REC = "REC#"


def record_address(tenant: str, source: str, token: str) -> Address:
    return Address(RECORDS, f"TENANT#{tenant}#SOURCE#{source}", _REC + token)


@dataclass(frozen=True)
class StoredRef:
    """What a stored record's item says about itself without decrypting anything."""

    kid: str
    index_refs: tuple[IndexRef, ...]
    ingestion_id: str | None = None  # the ingestion that wrote it
    row_number: int | None = None  # and the row of its file (None: written before rows were recorded)


@dataclass(frozen=True)
class Put:
    """What `put_sealed` did: how many of the records were new, and what those that existed said of themselves
    before (read anyway to find their stale keys and index entries; the ingest flow finds repeated keys in it)."""

    new: int
    before: dict[str, StoredRef]


def _ref_text(ref: IndexRef) -> str:
    return f"{ref.attribute}#{ref.digest}"


def _ref_of(text: str) -> IndexRef:
    attribute, _, digest = text.partition("#")
    return IndexRef(attribute, digest)


class RecordRepository:
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str, journal: ChangeJournal | None = None):
        self._ddb, self._tables, self._tenant = ddb, tables, tenant
        self.journal = journal or ChangeJournal(ddb, tables, tenant)

    def address(self, source: str, token: str) -> Address:
        return record_address(self._tenant, source, token)

    def _pk(self, source: str) -> str:
        return f"TENANT#{self._tenant}#SOURCE#{source}"

    def _index_pk(self, ref: IndexRef) -> str:
        return f"TENANT#{self._tenant}#IDX#{_ref_text(ref)}"

    # ------------------------------------------------------------------ writes

    def refs(self, source: str, tokens: Iterable[str]) -> dict[str, StoredRef]:
        """token -> key ID and index refs of those of `tokens` already stored."""
        pk = self._pk(source)
        found = {}
        for item in batch_get(self._ddb, self._tables.records, [key(pk, _REC + t) for t in tokens],
                              projection="sk, index_refs, kid, ingestion_id, row_number"):
            values = from_item(item)
            found[values["sk"][len(_REC):]] = StoredRef(values["kid"], tuple(
                _ref_of(r) for r in sorted(values.get("index_refs", ()))), values.get("ingestion_id"),
                values.get("row_number"))
        return found

    def put_sealed(self, source: str, sealed: Iterable[SealedRecord]) -> Put:
        """Writes records: new keys first, then the records that point at them, then the keys they replaced and
        the index entries of values they no longer have are removed. Idempotent: the same record written again
        replaces itself. Returns how many records did not exist before, and what those that did said before."""
        unique = list({s.token: s for s in sealed}.values())  # the same record twice in one batch: the last wins
        new = 0
        was: dict[str, StoredRef] = {}
        for start in range(0, len(unique), BATCH_GET_MAX):
            chunk = unique[start:start + BATCH_GET_MAX]
            before = self.refs(source, [s.token for s in chunk])
            was.update(before)
            new += sum(1 for s in chunk if s.token not in before)
            batch_write(self._ddb, self._tables.keys, [key_item(s.document) for s in chunk])
            batch_write(self._ddb, self._tables.records, [self._item(s) for s in chunk])
            batch_write(self._ddb, self._tables.keys, [], [key_key(self.address(source, t), ref.kid)
                                                           for t, ref in before.items()])
            puts: list[Item] = []
            deletes: list[Item] = []
            for s in chunk:
                entry_sk = f"SOURCE#{source}#REC#{s.token}"
                stale = set(before[s.token].index_refs if s.token in before else ()) - set(s.index_refs)
                puts += [to_item({"pk": self._index_pk(ref), "sk": entry_sk, "kid": s.document.kid})
                         for ref in s.index_refs]
                deletes += [key(self._index_pk(ref), entry_sk) for ref in stale]
            batch_write(self._ddb, self._tables.index, puts, deletes)
            self.journal.add(source, [s.token for s in chunk])
        return Put(new, was)

    @staticmethod
    def _item(record: SealedRecord) -> Item:
        extra: dict[str, Any] = {"ingestion_id": record.ingestion_id, "ingested_at": record.ingested_at}
        if record.row_number is not None:
            extra["row_number"] = record.row_number
        return data_item(record.document, **extra, index_refs={_ref_text(r) for r in record.index_refs})

    def keep(self, source: str, tokens: Iterable[str], stamp: str) -> int:
        """Marks those of the records that exist as named by a full snapshot at `stamp` (a rejected row's key: the
        source still has the record, so applying that snapshot must not delete it). -> how many existed."""
        kept = 0
        for token in dict.fromkeys(tokens):
            try:
                self._ddb.update_item(TableName=self._tables.records, Key=key(self._pk(source), _REC + token),
                                      UpdateExpression="SET kept_at = :stamp",
                                      ConditionExpression="attribute_exists(pk)",
                                      ExpressionAttributeValues={":stamp": to_value(stamp)})
                kept += 1
            except ClientError as error:
                if not is_conditional_failure(error):
                    raise
                # no such record: nothing to keep
        return kept

    def delete(self, source: str, tokens: Iterable[str]) -> int:
        """Deletes records, every wrapped key they ever had (crypto-shredding) and their index entries. -> how many
        of `tokens` existed."""
        pk = self._pk(source)
        tokens = list(tokens)
        deleted = 0
        for start in range(0, len(tokens), BATCH_GET_MAX):
            chunk = tokens[start:start + BATCH_GET_MAX]
            stored = self.refs(source, chunk)
            batch_write(self._ddb, self._tables.keys, [], [
                key(k["pk"]["S"], k["sk"]["S"]) for t in stored
                for k in query_prefix(self._ddb, self._tables.keys, pk, f"{_REC}{t}#K#", projection="pk, sk")])
            batch_write(self._ddb, self._tables.records, [], [key(pk, _REC + t) for t in stored])
            batch_write(self._ddb, self._tables.index, [], [
                key(self._index_pk(ref), f"SOURCE#{source}#REC#{t}")
                for t, ref_set in stored.items() for ref in ref_set.index_refs])
            # Every requested token, found or not: a retry after a crash right here finds nothing left to delete,
            # and the run must still hear of the deletion.
            self.journal.add(source, chunk)
            deleted += len(stored)
        return deleted

    # ------------------------------------------------------------------ reads

    def _record(self, item: Item, wrapped: Item) -> SealedRecord:
        values = from_item({k: item[k] for k in ("ingestion_id", "ingested_at", "index_refs", "row_number")
                            if k in item})
        return SealedRecord(token=item["sk"]["S"][len(_REC):], document=document_of(RECORDS, item, wrapped),
                            ingestion_id=values["ingestion_id"], ingested_at=values["ingested_at"],
                            index_refs=tuple(_ref_of(r) for r in sorted(values.get("index_refs", ()))),
                            row_number=values.get("row_number"))

    def get(self, source: str, token: str) -> SealedRecord | None:
        """The record, or None when it does not exist or its key is gone (shredded: unreadable by design)."""
        found = get_with_key(self._ddb, self._tables.records, self._tables.keys, self._pk(source), _REC + token)
        return self._record(*found) if found else None

    def read(self, source: str, tokens: Iterable[str]) -> Iterator[SealedRecord]:
        """Those of `tokens` that exist and are readable."""
        pk = self._pk(source)
        tokens = list(tokens)
        for start in range(0, len(tokens), BATCH_GET_MAX):
            items = list(batch_get(self._ddb, self._tables.records,
                                   [key(pk, _REC + t) for t in tokens[start:start + BATCH_GET_MAX]]))
            for item, wrapped in with_keys(self._ddb, self._tables.keys, items):
                yield self._record(item, wrapped)

    def all(self, source: str) -> Iterator[SealedRecord]:
        """Every readable record of a source, a page at a time."""
        page: list[Item] = []
        for item in query_prefix(self._ddb, self._tables.records, self._pk(source), _REC):
            page.append(item)
            if len(page) == BATCH_GET_MAX:
                yield from (self._record(*pair) for pair in with_keys(self._ddb, self._tables.keys, page))
                page = []
        yield from (self._record(*pair) for pair in with_keys(self._ddb, self._tables.keys, page))

    def count(self, source: str) -> int:
        count, start = 0, None
        while True:
            kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            page = self._ddb.query(TableName=self._tables.records, Select="COUNT", KeyConditionExpression="pk = :pk",
                                   ExpressionAttributeValues={":pk": {"S": self._pk(source)}}, **kwargs)
            count += page["Count"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return count

    def tokens(self, source: str) -> list[str]:
        return [i["sk"]["S"][len(_REC):]
                for i in query_prefix(self._ddb, self._tables.records, self._pk(source), _REC, projection="sk")]

    def stamps(self, source: str) -> list[tuple[str, str]]:
        """(token, when an ingestion last wrote the record or a full snapshot last kept it) of every record of a
        source: what a snapshot's start is compared with."""
        stamps = []
        for item in query_prefix(self._ddb, self._tables.records, self._pk(source), _REC,
                                 projection="sk, ingested_at, kept_at"):
            values = from_item(item)
            stamps.append((values["sk"][len(_REC):], max(values["ingested_at"], values.get("kept_at", ""))))
        return stamps

    # ------------------------------------------------------------------ blind-index lookups

    def find(self, ref: IndexRef) -> list[tuple[str, str]]:
        """(source, token) of every record whose blind index for `ref` matches.

        An entry is only a pointer: the record item's own `index_refs` say what it holds now. Two writers of one
        record at the same moment can leave an entry for a value the record no longer has (batch writes take no
        conditions), so each entry is checked against its record, and an entry its record disowns is deleted (read
        repair) unless a writer has put it again since it was read (each entry names the key ID of the write that
        put it)."""
        entries: dict[str, dict[str, Item]] = {}
        for item in query_prefix(self._ddb, self._tables.index, self._index_pk(ref), "SOURCE#"):
            _, source, _, token = item["sk"]["S"].split("#", 3)
            entries.setdefault(source, {})[token] = item
        found = []
        for source, items in entries.items():
            current = self.refs(source, items)
            for token, item in items.items():
                if token in current and ref in current[token].index_refs:
                    found.append((source, token))
                else:
                    self._delete_unless_rewritten(item)
        return found

    def _delete_unless_rewritten(self, entry: Item) -> None:
        """Deletes an index entry as it was read, unless a writer has put it again since (another kid)."""
        unchanged = ({"ConditionExpression": "kid = :kid", "ExpressionAttributeValues": {":kid": entry["kid"]}}
                     if "kid" in entry else {"ConditionExpression": "attribute_not_exists(kid)"})  # put before kids
        try:
            self._ddb.delete_item(TableName=self._tables.index, Key=key(entry["pk"]["S"], entry["sk"]["S"]),
                                  **unchanged)
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            # put again by a writer since it was read: that writer's record holds the value

