"""The DynamoDB plumbing every repository shares (and nothing above `storage/` uses).

- `to_item` / `from_item`: plain values <-> DynamoDB attribute values through boto3's TypeSerializer and
  TypeDeserializer. Numbers come back as `int` when integral and as exact `Decimal` otherwise (a float going in is
  stored through its decimal text); binary comes back as `bytes`; string sets as `set[str]`. `None` is stored as
  NULL; an empty set (which DynamoDB refuses) is left out.
- `query_prefix`: every item of one partition whose sort key starts with a prefix, page after page.
- `batch_write` / `batch_get`: at most 25 / 100 keys a request, and whatever DynamoDB leaves unprocessed (throttling)
  is sent again after an exponential backoff; still unprocessed after 10 rounds is an error, never a silent loss.
- `Tables`: the physical table names, one bundle for every repository.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]
else:
    DynamoDBClient = Any
    Item = dict[str, Any]

BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
_ROUNDS = 10  # of sending what a batch left unprocessed, with backoff 50 ms, 100 ms, ... (about 51 s in all)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class Tables:
    """Physical table names, from the settings (the template names them)."""

    control: str
    records: str
    keys: str
    index: str
    profiles: str


def to_item(values: Mapping[str, Any]) -> Item:
    return {name: _serializer.serialize(_storable(value)) for name, value in values.items()
            if not (isinstance(value, (set, frozenset)) and not value)}


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))  # the number as written, not its binary approximation
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    return value


def to_value(value: Any) -> AttributeValueTypeDef:
    """One attribute value (for expression values)."""
    return to_item({"v": value})["v"]


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, Binary):
        return value.value  # type: ignore[attr-defined]  # boto3-stubs leave Binary.value out
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def key(pk: str, sk: str) -> Item:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def sort_key(item: Mapping[str, Any]) -> str:
    return item["sk"]["S"]


def query_prefix(ddb: DynamoDBClient, table: str, pk: str, sk_prefix: str,
                 projection: str | None = None) -> Iterator[Item]:
    """Every item of partition `pk` whose sort key starts with `sk_prefix`, in sort-key order (consistent reads)."""
    start = None
    while True:
        kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        if projection:
            kwargs["ProjectionExpression"] = projection
        page = ddb.query(TableName=table, KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                         ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
                         ConsistentRead=True, **kwargs)
        yield from page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def batch_write(ddb: DynamoDBClient, table: str, puts: Iterable[Item], deletes: Iterable[Item] = ()) -> None:
    requests: list[Any] = [{"PutRequest": {"Item": p}} for p in puts] + [{"DeleteRequest": {"Key": d}}
                                                                       for d in deletes]
    for start in range(0, len(requests), BATCH_WRITE_MAX):
        pending: Any = {table: requests[start:start + BATCH_WRITE_MAX]}
        for attempt in range(_ROUNDS):
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems")
            if not pending:
                break
            _back_off(attempt, table)


def batch_get(ddb: DynamoDBClient, table: str, keys: Iterable[Item], projection: str | None = None,
              consistent: bool = True) -> Iterator[Item]:
    """The items of `keys` that exist (in no particular order)."""
    keys = list(keys)
    for start in range(0, len(keys), BATCH_GET_MAX):
        request: dict[str, Any] = {"Keys": keys[start:start + BATCH_GET_MAX], "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
        pending: Any = {table: request}
        for attempt in range(_ROUNDS):
            response = ddb.batch_get_item(RequestItems=pending)
            yield from response["Responses"].get(table, [])
            pending = response.get("UnprocessedKeys")
            if not pending:
                break
            _back_off(attempt, table)


def _back_off(attempt: int, table: str) -> None:
    """Throttled: wait, then send what was left; after the last round, fail rather than lose part of a batch."""
    if attempt == _ROUNDS - 1:
        raise RuntimeError(f"DynamoDB kept part of a batch unprocessed in {table}")
    time.sleep(0.05 * 2 ** attempt)


def is_conditional_failure(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
