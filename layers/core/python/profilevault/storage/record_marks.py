"""Data access: the marks an ingestion leaves on a source's records besides their sealed content, which snapshots
need without decrypting anything.

On the record items (RecordsTable, TENANT#<t>#SOURCE#<s> / REC#<token>, key shapes owned by `store`):
  ingestion_id, row_number   which ingestion and which row of its file wrote the record (duplicate keys in a file)
  ingested_at                when it was written
  kept_at                    when a full snapshot last named it in a rejected row: the source still has the record,
                             so applying that snapshot must not delete it
"""
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from profilevault.storage import store

_BATCH_GET_MAX = 100
_to_item = TypeSerializer().serialize
_from_item = TypeDeserializer().deserialize


@dataclass(frozen=True)
class WrittenFrom:
    ingestion_id: str
    row_number: int | None  # None: written before rows were recorded


class RecordMarks:
    def __init__(self, ddb, records_table: str, tenant: str):
        self._ddb, self._table, self._tenant = ddb, records_table, tenant

    def _key(self, source: str, token: str) -> dict:
        return {"pk": _to_item(store.records_pk(self._tenant, source)), "sk": _to_item(store.record_sk(token))}

    def written_from(self, source: str, tokens: Iterable[str]) -> dict[str, WrittenFrom]:
        """token -> the ingestion and row that wrote each of these records that exists."""
        tokens = list(dict.fromkeys(tokens))
        found: dict[str, WrittenFrom] = {}
        for start in range(0, len(tokens), _BATCH_GET_MAX):
            request = {self._table: {"Keys": [self._key(source, t) for t in tokens[start:start + _BATCH_GET_MAX]],
                                     "ProjectionExpression": "sk, ingestion_id, row_number", "ConsistentRead": True}}
            while request:
                response = self._ddb.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    values = {k: _from_item(v) for k, v in item.items()}
                    row = values.get("row_number")
                    found[values["sk"].removeprefix("REC#")] = WrittenFrom(values.get("ingestion_id", ""),
                                                                           int(row) if row is not None else None)
                request = response.get("UnprocessedKeys") or None
        return found

    def keep(self, source: str, tokens: Iterable[str], stamp: str) -> int:
        """Marks the records that exist as named by a snapshot at `stamp`; returns how many there were."""
        kept = 0
        for token in dict.fromkeys(tokens):
            try:
                self._ddb.update_item(TableName=self._table, Key=self._key(source, token),
                                      UpdateExpression="SET kept_at = :stamp",
                                      ConditionExpression="attribute_exists(pk)",
                                      ExpressionAttributeValues={":stamp": _to_item(stamp)})
                kept += 1
            except self._ddb.exceptions.ConditionalCheckFailedException:
                pass  # no such record: nothing to keep
        return kept

    def stamps(self, source: str) -> Iterator[tuple[str, str]]:
        """(token, when a snapshot or an ingestion last named the record) of every record of the source."""
        pages = self._ddb.get_paginator("query").paginate(
            TableName=self._table, KeyConditionExpression="pk = :pk AND begins_with(sk, :rec)",
            ExpressionAttributeValues={":pk": _to_item(store.records_pk(self._tenant, source)),
                                       ":rec": _to_item("REC#")},
            ProjectionExpression="sk, ingested_at, kept_at", ConsistentRead=True)
        for page in pages:
            for item in page["Items"]:
                values = {k: _from_item(v) for k, v in item.items()}
                yield values["sk"].removeprefix("REC#"), max(values["ingested_at"], values.get("kept_at", ""))
