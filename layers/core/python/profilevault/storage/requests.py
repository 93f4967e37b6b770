"""Data access for privacy requests: the only place that knows their key shapes.

Key shapes (pk / sk), all in the control table:
  TENANT#<t>#PRIVACY / REQ#<id>           the request: type, status, dates, history, steps, profile IDs, result.
                                          No personal data: IDs are random, the subject is only referenced blindly.
                 same / SUBJECT#<id>      the sealed subject (identifiers, verification, note); its wrapped data key
                                          lives in the keys table at SUBJECT#<id>#K#<kid>
  TENANT#<t>#PRIVACY#BY#<ref> / REQ#<id>  the requests of a subject, by blind reference (`<attr>#<hmac>`,
                                          `profile#<id>`, `record#<source>#<token>`), so a subject's own requests are
                                          found without reading the others
Request IDs start with the hex of their receipt time in milliseconds, so REQ#<id> sorts oldest first and a reverse
query pages newest first.
"""
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from profilevault.storage import store

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize
_KEY_FIELDS = ("pk", "sk")


class StatusMismatch(Exception):
    """The request is not in one of the expected statuses (or does not exist: `current` is None)."""

    def __init__(self, current: str | None):
        super().__init__(current)
        self.current = current


@dataclass(frozen=True)
class ListFilter:
    status: str | None = None
    type: str | None = None
    overdue_at: str | None = None  # only requests due before this instant and not yet completed or cancelled


class RequestRepository:
    """Privacy requests of one tenant, bound to the DynamoDB client and tables."""

    def __init__(self, ddb, tables: store.Tables, tenant: str):
        self.ddb, self.tables, self.tenant = ddb, tables, tenant
        self.pk = f"TENANT#{tenant}#PRIVACY"

    # ------------------------------------------------------------ keys

    def _key(self, request_id: str) -> dict:
        return {"pk": {"S": self.pk}, "sk": {"S": f"REQ#{request_id}"}}

    def subject_location(self, request_id: str) -> tuple[str, str]:
        """(pk, sk) of the sealed subject: what its ciphertext is bound to."""
        return self.pk, f"SUBJECT#{request_id}"

    def _by_ref_pk(self, ref: str) -> str:
        return f"{self.pk}#BY#{ref}"

    # ------------------------------------------------------------ requests

    def create(self, request: dict[str, Any], sealed_subject: tuple[dict, dict]) -> None:
        """The subject's key, then the subject, then the request that names it (a crash leaves no request
        without its subject)."""
        item, key_item = sealed_subject
        store.batch_write(self.ddb, self.tables.keys, [key_item], [])
        self.ddb.put_item(TableName=self.tables.control, Item=item)
        self.ddb.put_item(TableName=self.tables.control, Item={**self._key(request["id"]), **_attrs(request)},
                          ConditionExpression="attribute_not_exists(pk)")

    def get(self, request_id: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(TableName=self.tables.control, Key=self._key(request_id),
                                 ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    def update(self, request_id: str, expect: set[str], changes: dict[str, Any],
               append: dict[str, list] | None = None, condition: str | None = None) -> dict[str, Any]:
        """Sets `changes` and appends to the lists in `append`, only while the status is one of `expect` (any status
        when `expect` is empty) and the extra `condition` holds. -> the request as now stored.
        Raises StatusMismatch with the current status otherwise."""
        names, values, sets = {}, {}, []
        for n, (field, value) in enumerate(changes.items()):
            names[f"#c{n}"], values[f":c{n}"] = field, _serialize(value)
            sets.append(f"#c{n} = :c{n}")
        for n, (field, entries) in enumerate((append or {}).items()):
            names[f"#a{n}"], values[f":a{n}"] = field, _serialize(entries)
            values[":empty"] = {"L": []}
            sets.append(f"#a{n} = list_append(if_not_exists(#a{n}, :empty), :a{n})")
        conditions = ["attribute_exists(pk)"]
        if expect:
            allowed = sorted(expect)
            names["#status"] = "status"
            values.update({f":e{n}": {"S": s} for n, s in enumerate(allowed)})
            conditions.append(f"#status IN ({', '.join(f':e{n}' for n in range(len(allowed)))})")
        if condition:
            conditions.append(condition)
        try:
            item = self.ddb.update_item(
                TableName=self.tables.control, Key=self._key(request_id), UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions), ExpressionAttributeNames=names,
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW")["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            current = self.get(request_id)
            raise StatusMismatch(current["status"] if current else None) from None
        return _plain(item)

    def page(self, filters: ListFilter, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` requests, newest first, older than the request `after`; -> (page, ID to continue after).
        Filters are applied by DynamoDB as it reads, so a page may take several reads."""
        names, values, conditions = {}, {":pk": {"S": self.pk}, ":prefix": {"S": "REQ#"}}, []
        if filters.status:
            names["#status"] = "status"
            values[":status"] = {"S": filters.status}
            conditions.append("#status = :status")
        if filters.type:
            names["#type"] = "type"
            values[":type"] = {"S": filters.type}
            conditions.append("#type = :type")
        if filters.overdue_at:
            names["#status"] = "status"
            values.update({":now": {"S": filters.overdue_at}, ":completed": {"S": "completed"},
                           ":cancelled": {"S": "cancelled"}})
            conditions.append("due_at < :now AND NOT (#status IN (:completed, :cancelled))")
        kwargs: dict[str, Any] = {"FilterExpression": " AND ".join(conditions),
                                  "ExpressionAttributeNames": names} if conditions else {}
        start = {"pk": {"S": self.pk}, "sk": {"S": f"REQ#{after}"}} if after else None
        found: list[dict[str, Any]] = []
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = self.ddb.query(TableName=self.tables.control, ScanIndexForward=False, ConsistentRead=True,
                                  KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                                  ExpressionAttributeValues=values, Limit=max(limit, 25), **kwargs)
            found += [_plain(i) for i in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if len(found) >= limit or not start:
                break
        if len(found) > limit or (len(found) == limit and start):
            return found[:limit], found[limit - 1]["id"]
        return found, None

    # ------------------------------------------------------------ the sealed subject

    def subject_items(self, request_id: str) -> tuple[dict, dict] | None:
        """(subject item, key item), or None once the subject has been forgotten."""
        pk, sk = self.subject_location(request_id)
        item = self.ddb.get_item(TableName=self.tables.control, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                                 ConsistentRead=True).get("Item")
        if not item:
            return None
        key_item = self.ddb.get_item(TableName=self.tables.keys, ConsistentRead=True, Key={
            "pk": {"S": pk}, "sk": {"S": store.key_sk(sk, item["kid"]["S"])}}).get("Item")
        return (item, key_item) if key_item else None

    def forget_subject(self, request_id: str) -> None:
        """Deletes the sealed subject and every wrapped key it had (the request itself stays, as the record)."""
        pk, sk = self.subject_location(request_id)
        keys = list(store.query_prefix(self.ddb, self.tables.keys, pk, f"{sk}#K#", projection="pk, sk"))
        self.ddb.delete_item(TableName=self.tables.control, Key={"pk": {"S": pk}, "sk": {"S": sk}})
        store.batch_write(self.ddb, self.tables.keys, [], [{"pk": k["pk"], "sk": k["sk"]} for k in keys])

    # ------------------------------------------------------------ the subject's requests, by blind reference

    def index_subject(self, request_id: str, refs: list[str]) -> None:
        store.batch_write(self.ddb, self.tables.control,
                          [{"pk": {"S": self._by_ref_pk(ref)}, "sk": {"S": f"REQ#{request_id}"}} for ref in refs], [])

    def requests_by_refs(self, refs: list[str]) -> list[str]:
        """IDs of the requests indexed under any of `refs`, oldest first."""
        found: set[str] = set()
        for ref in refs:
            found.update(i["sk"]["S"][4:] for i in store.query_prefix(self.ddb, self.tables.control,
                                                                       self._by_ref_pk(ref), "REQ#",
                                                                       projection="sk"))
        return sorted(found)

    def unindex_subject(self, request_id: str, refs: list[str]) -> None:
        store.batch_write(self.ddb, self.tables.control, [],
                          [{"pk": {"S": self._by_ref_pk(ref)}, "sk": {"S": f"REQ#{request_id}"}} for ref in refs])


def _attrs(values: dict[str, Any]) -> dict:
    return {k: _serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict) -> dict[str, Any]:
    return {k: _from_dynamo(_deserialize(v)) for k, v in item.items() if k not in _KEY_FIELDS}


def _from_dynamo(value: Any) -> Any:
    """Decimal -> int (requests hold counts only), sets -> sorted lists, recursively."""
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return sorted(_from_dynamo(v) for v in value)
    if type(value).__name__ == "Decimal":
        return int(value)
    return value

