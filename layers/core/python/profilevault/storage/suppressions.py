"""Data access for the suppression list: blind identifiers and record tokens of erased people, so that the same rows
dropped again are not stored again (privacy/suppression.py).

Key shapes (pk / sk), ControlTable:
  TENANT#<t>#SUPPRESSIONS / SUP#<id>       one entry {ref, kind, blind, source?, request_id, created_at}; <id> is
                                           derived from <ref>, so a write batch looks its rows up by key
  TENANT#<t>#SUPPRESSIONS / GENERATION     a counter every erasure moves after writing its entries: a writer that
                                           read it before and after a batch knows whether to look again
A <ref> is `<attribute>#<hmac>` (a blind-index reference, as records name them) or `record#<source>#<token>`.
Nothing here is a plaintext value: hmac and token are keyed HMACs.
"""
import hashlib
from dataclasses import dataclass
from typing import Any

from profilevault.storage.dynamo import DynamoDBClient, Item, batch_get, batch_write, from_item, key, to_item

RECORD = "record"
_GENERATION = "GENERATION"


def suppression_id(ref: str) -> str:
    return "sup_" + hashlib.sha256(ref.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Suppression:
    ref: str
    request_id: str
    created_at: str

    @property
    def id(self) -> str:
        return suppression_id(self.ref)

    @property
    def kind(self) -> str:
        """An identifier attribute (email, phone, national_id, customer_id) or `record`."""
        return self.ref.split("#", 1)[0]

    @property
    def source(self) -> str | None:
        return self.ref.split("#")[1] if self.kind == RECORD else None

    @property
    def blind(self) -> str:
        return self.ref.rsplit("#", 1)[1]


def record_ref(source: str, token: str) -> str:
    return f"{RECORD}#{source}#{token}"


class SuppressionRepository:
    """One tenant's suppression entries and their generation counter in the control table."""

    def __init__(self, dynamodb: DynamoDBClient, table: str, tenant: str):
        self._ddb = dynamodb
        self._table = table
        self._pk = f"TENANT#{tenant}#SUPPRESSIONS"

    def _key(self, sk: str) -> Item:
        return key(self._pk, sk)

    def add(self, entries: list[Suppression]) -> None:
        """Idempotent: an entry written again (a retried step, a second erasure) replaces itself."""
        batch_write(self._ddb, self._table, [
            to_item({"pk": self._pk, "sk": f"SUP#{e.id}", "ref": e.ref, "request_id": e.request_id,
                     "created_at": e.created_at}) for e in {e.ref: e for e in entries}.values()])

    def advance_generation(self) -> int:
        response = self._ddb.update_item(TableName=self._table, Key=self._key(_GENERATION),
                                         UpdateExpression="ADD generation :one",
                                         ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
        return int(response["Attributes"]["generation"]["N"])

    def generation(self) -> int:
        item = self._ddb.get_item(TableName=self._table, Key=self._key(_GENERATION), ConsistentRead=True).get("Item")
        return int(item["generation"]["N"]) if item else 0

    def lookup(self, refs: set[str]) -> tuple[set[str], int]:
        """Which of `refs` are suppressed, and the generation read just before them (so that entries written after
        it are found by a later look, see privacy.suppression.recheck). One batched read of the entries."""
        generation = self.generation()
        found = {from_item(item)["ref"] for item in batch_get(
            self._ddb, self._table, [self._key(f"SUP#{suppression_id(r)}") for r in sorted(refs)])}
        return found & refs, generation

    def page(self, limit: int, after: str | None) -> tuple[list[Suppression], str | None]:
        """Up to `limit` entries after the one with ID `after`; -> (entries, the last one's ID if more follow)."""
        kwargs: dict[str, Any] = {"ExclusiveStartKey": self._key(f"SUP#{after}")} if after else {}
        page = self._ddb.query(TableName=self._table, KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                               ExpressionAttributeValues={":pk": {"S": self._pk}, ":p": {"S": "SUP#"}},
                               Limit=limit, ConsistentRead=True, **kwargs)
        last = page.get("LastEvaluatedKey")
        return [self._entry(i) for i in page["Items"]], (last["sk"]["S"][4:] if last else None)

    def get(self, entry_id: str) -> Suppression | None:
        item = self._ddb.get_item(TableName=self._table, Key=self._key(f"SUP#{entry_id}"), ConsistentRead=True).get(
            "Item")
        return self._entry(item) if item else None

    def remove(self, entry_id: str) -> Suppression | None:
        """Deletes one entry; -> what it was, or None if there was none."""
        old = self._ddb.delete_item(TableName=self._table, Key=self._key(f"SUP#{entry_id}"),
                                    ReturnValues="ALL_OLD").get("Attributes")
        return self._entry(old) if old else None

    @staticmethod
    def _entry(item: Item) -> Suppression:
        values = from_item(item)
        return Suppression(ref=values["ref"], request_id=values["request_id"], created_at=values["created_at"])
