"""Privacy requests and their sealed subjects.

    ControlTable  TENANT#<t>#PRIVACY / REQ#<id>            the request: type, status, dates, history, steps, profile
                                                            IDs, result. No personal data: IDs are random, the subject
                                                            is referenced blindly only
                  TENANT#<t>#PRIVACY / SUBJECT#<id>        the sealed subject (identifiers, verification, note)
                  TENANT#<t>#PRIVACY#BY#<ref> / REQ#<id>   the requests of a subject, by blind reference
                                                            (`<attr>#<hmac>`, `profile#<id>`, `record#<s>#<token>`)
    KeysTable     TENANT#<t>#PRIVACY / SUBJECT#<id>#K#<kid>   the subject's wrapped data key

Request IDs start with the hex of their receipt time in milliseconds, so REQ#<id> sorts oldest first and a reverse
query pages newest first.

    requests = RequestRepository(ddb, tables, tenant)
    requests.subject_address(request_id)              # where vault.seal binds the subject
    requests.create(request, sealed_subject)          # the subject's key, the subject, then the request (conditional)
    requests.get(request_id)                          # -> dict | None
    requests.update(request_id, expect, changes, append=..., condition=...)   # conditional; StatusMismatch
    page, after = requests.page(ListFilter(...), limit, after)                 # newest first
    requests.subject(request_id); requests.forget_subject(request_id)          # -> SealedDocument | None
    requests.index_subject(request_id, refs); requests.requests_by_refs(refs)  # -> [request id]
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from profilevault.storage.dynamo import (
    DynamoDBClient,
    Tables,
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
    SealedDocument,
    data_item,
    document_of,
    get_with_key,
    key_item,
)

REQUESTS = "requests"  # the logical table name bound into the sealed subject's ciphertext
_REQ, _SUBJECT = "REQ#", "SUBJECT#"


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
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._tables = ddb, tables
        self._pk = f"TENANT#{tenant}#PRIVACY"

    def subject_address(self, request_id: str) -> Address:
        return Address(REQUESTS, self._pk, _SUBJECT + request_id)

    def _by_ref_pk(self, ref: str) -> str:
        return f"{self._pk}#BY#{ref}"

    # ------------------------------------------------------------------ requests

    def create(self, request: dict[str, Any], subject: SealedDocument) -> None:
        """The subject's key, then the subject, then the request that names it (a crash leaves no request without
        its subject)."""
        batch_write(self._ddb, self._tables.keys, [key_item(subject)])
        self._ddb.put_item(TableName=self._tables.control, Item=data_item(subject))
        self._ddb.put_item(TableName=self._tables.control, ConditionExpression="attribute_not_exists(pk)",
                           Item={**key(self._pk, _REQ + request["id"]),
                                 **to_item({k: v for k, v in request.items() if v is not None})})

    def get(self, request_id: str) -> dict[str, Any] | None:
        item = self._ddb.get_item(TableName=self._tables.control, Key=key(self._pk, _REQ + request_id),
                                  ConsistentRead=True).get("Item")
        return _request(item) if item else None

    def update(self, request_id: str, expect: Iterable[str], changes: dict[str, Any],
               append: dict[str, list] | None = None, condition: str | None = None) -> dict[str, Any]:
        """Sets `changes` and appends to the lists in `append`, only while the status is one of `expect` (any status
        when it is empty) and the extra `condition` holds. -> the request as now stored. StatusMismatch (with the
        current status) otherwise."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets = []
        for n, (field, value) in enumerate(changes.items()):
            names[f"#c{n}"], values[f":c{n}"] = field, to_value(value)
            sets.append(f"#c{n} = :c{n}")
        for n, (field, entries) in enumerate((append or {}).items()):
            names[f"#a{n}"], values[f":a{n}"] = field, to_value(entries)
            values[":empty"] = {"L": []}
            sets.append(f"#a{n} = list_append(if_not_exists(#a{n}, :empty), :a{n})")
        conditions = ["attribute_exists(pk)"]
        allowed = sorted(expect)
        if allowed:
            names["#status"] = "status"
            values.update({f":e{n}": {"S": s} for n, s in enumerate(allowed)})
            conditions.append(f"#status IN ({', '.join(f':e{n}' for n in range(len(allowed)))})")
        if condition:
            conditions.append(condition)
        try:
            item = self._ddb.update_item(
                TableName=self._tables.control, Key=key(self._pk, _REQ + request_id),
                UpdateExpression="SET " + ", ".join(sets), ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names, ExpressionAttributeValues=values, ReturnValues="ALL_NEW")["Attributes"]
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            current = self.get(request_id)
            raise StatusMismatch(current["status"] if current else None) from None
        return _request(item)

    def page(self, filters: ListFilter, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` requests, newest first, older than the request `after`; -> (page, ID to continue after).
        DynamoDB applies the filters as it reads, so a page may take several reads."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {":pk": {"S": self._pk}, ":prefix": {"S": _REQ}}
        conditions = []
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
        start = key(self._pk, _REQ + after) if after else None
        found: list[dict[str, Any]] = []
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._ddb.query(TableName=self._tables.control, ScanIndexForward=False, ConsistentRead=True,
                                       KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                                       ExpressionAttributeValues=values, Limit=max(limit, 25), **kwargs)
            found += [_request(i) for i in response["Items"]]
            start = response.get("LastEvaluatedKey")
            if len(found) >= limit or not start:
                break
        if len(found) > limit or (len(found) == limit and start):
            return found[:limit], found[limit - 1]["id"]
        return found, None

    # ------------------------------------------------------------------ the sealed subject

    def subject(self, request_id: str) -> SealedDocument | None:
        """None once the subject has been forgotten."""
        found = get_with_key(self._ddb, self._tables.control, self._tables.keys, self._pk, _SUBJECT + request_id)
        return document_of(REQUESTS, *found) if found else None

    def forget_subject(self, request_id: str) -> None:
        """Deletes the sealed subject and every wrapped key it had (the request itself stays, as the record)."""
        address = self.subject_address(request_id)
        keys = [key(k["pk"]["S"], k["sk"]["S"]) for k in query_prefix(
            self._ddb, self._tables.keys, self._pk, f"{address.sk}#K#", projection="pk, sk")]
        self._ddb.delete_item(TableName=self._tables.control, Key=key(self._pk, address.sk))
        batch_write(self._ddb, self._tables.keys, [], keys)

    # ------------------------------------------------------------------ a subject's requests, by blind reference

    def index_subject(self, request_id: str, refs: Iterable[str]) -> None:
        batch_write(self._ddb, self._tables.control, [key(self._by_ref_pk(r), _REQ + request_id) for r in refs])

    def unindex_subject(self, request_id: str, refs: Iterable[str]) -> None:
        batch_write(self._ddb, self._tables.control, [], [key(self._by_ref_pk(r), _REQ + request_id) for r in refs])

    def requests_by_refs(self, refs: Iterable[str]) -> list[str]:
        """IDs of the requests indexed under any of `refs`, oldest first."""
        found: set[str] = set()
        for ref in refs:
            found.update(i["sk"]["S"][len(_REQ):]
                         for i in query_prefix(self._ddb, self._tables.control, self._by_ref_pk(ref), _REQ,
                                               projection="sk"))
        return sorted(found)


def _request(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in from_item(item).items() if k not in ("pk", "sk")}

