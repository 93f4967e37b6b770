"""Ingestions: one item per landing file, expiring through DynamoDB TTL after 90 days.

    ControlTable  TENANT#<t> / INGESTION#<id>       the fields of `domain.ingestions.Ingestion` (warning_reasons as
                                                    JSON text, report_key binary), expires_at (epoch seconds)
      index BySource: by_source_pk TENANT#<t>#INGESTIONS#<source> / by_source_sk <started_at>#<id>

    ingestions = IngestionRepository(ddb, tables, tenant)
    ingestion = ingestions.create(Ingestion(...))        # or the one already there (a re-delivered S3 event)
    ingestions.update(id, expect_status="processing", rows_read=10)   # Conflict when the status is not that
    ingestions.get(id)                                    # -> Ingestion, NotFound
    page, after = ingestions.page(source, limit, after)   # newest first; `after` is an Ingestion.position
    ingestions.of_source(source)                          # every one of a source, newest first
"""
from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from profilevault.domain.ingestions import Ingestion
from profilevault.errors import Conflict, NotFound
from profilevault.storage.dynamo import (
    DynamoDBClient,
    Item,
    Tables,
    from_item,
    is_conditional_failure,
    key,
    query_prefix,
    to_item,
    to_value,
)

RETENTION_SECONDS = 90 * 24 * 3600  # as long as unification runs are kept
BY_SOURCE = "BySource"  # the control table's index of ingestions per source, by start time
_PREFIX = "INGESTION#"


def _stored(field: str, value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if field == "warning_reasons" and value is not None else value


def _ingestion(item: Item) -> Ingestion:
    values = from_item(item)
    if isinstance(values.get("warning_reasons"), str):
        values["warning_reasons"] = json.loads(values["warning_reasons"])
    return Ingestion.model_validate({k: v for k, v in values.items() if v is not None})


class IngestionRepository:
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._table, self._tenant = ddb, tables.control, tenant
        self._pk = f"TENANT#{tenant}"

    def _key(self, ingestion_id: str) -> Item:
        return key(self._pk, _PREFIX + ingestion_id)

    def _by_source_pk(self, source: str) -> str:
        return f"TENANT#{self._tenant}#INGESTIONS#{source}"

    def create(self, ingestion: Ingestion) -> Ingestion:
        """Creates the ingestion record, or returns the existing one (re-delivery of the same S3 event). DynamoDB
        TTL removes it after 90 days: by then its snapshot has been applied and its rejection report has expired."""
        fields = {k: _stored(k, v) for k, v in ingestion.model_dump().items() if v is not None}
        item = to_item({"pk": self._pk, "sk": _PREFIX + ingestion.id, "by_source_pk": self._by_source_pk(
            ingestion.source), "by_source_sk": ingestion.position, "expires_at": int(time.time()) + RETENTION_SECONDS,
            **fields})
        try:
            self._ddb.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
            return ingestion
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
        return self.get(ingestion.id)

    def update(self, ingestion_id: str, expect_status: str | None = None, **changes: Any) -> None:
        """Sets fields of the ingestion (None stores a null); with `expect_status` only while it has that status,
        so a finished ingestion never goes back to processing (Conflict otherwise)."""
        unknown = set(changes) - set(Ingestion.model_fields)
        if unknown:
            raise ValueError(f"not fields of an ingestion: {sorted(unknown)}")
        names = {f"#{k}": k for k in changes}
        values = {f":{k}": to_value(_stored(k, v)) for k, v in changes.items()}
        condition = "attribute_exists(pk)"
        if expect_status:
            names["#status_now"] = "status"
            values[":expected"] = {"S": expect_status}
            condition += " AND #status_now = :expected"
        try:
            self._ddb.update_item(TableName=self._table, Key=self._key(ingestion_id),
                                  UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in changes),
                                  ConditionExpression=condition, ExpressionAttributeNames=names,
                                  ExpressionAttributeValues=values)
        except ClientError as error:
            if is_conditional_failure(error):
                raise Conflict(f"ingestion {ingestion_id} is no longer {expect_status}") from error
            raise

    def get(self, ingestion_id: str) -> Ingestion:
        item = self._ddb.get_item(TableName=self._table, Key=self._key(ingestion_id), ConsistentRead=True).get("Item")
        if not item:
            raise NotFound(f"no ingestion {ingestion_id}")
        return _ingestion(item)

    def page(self, source: str | None, limit: int, after: str | None) -> tuple[list[Ingestion], str | None]:
        """Up to `limit` ingestions, newest first, after the one whose position (`Ingestion.position`, what this
        returns as the next position) is `after`. One source's come from its index partition; all sources' are
        sorted in memory (a tenant has few sources' worth: ingestion records expire after 90 days)."""
        if source is None:
            everything = sorted((_ingestion(i) for i in query_prefix(self._ddb, self._table, self._pk, _PREFIX)),
                                key=lambda i: i.position, reverse=True)
            rest = [i for i in everything if after is None or i.position < after]
            page = rest[:limit]
            return page, (page[-1].position if len(rest) > limit else None)
        kwargs: dict[str, Any] = {}
        if after:
            kwargs["ExclusiveStartKey"] = {**self._key(after.rsplit("#", 1)[-1]),
                                           "by_source_pk": {"S": self._by_source_pk(source)},
                                           "by_source_sk": {"S": after}}
        response = self._ddb.query(TableName=self._table, IndexName=BY_SOURCE,
                                   KeyConditionExpression="by_source_pk = :p",
                                   ExpressionAttributeValues={":p": {"S": self._by_source_pk(source)}},
                                   ScanIndexForward=False, Limit=limit, **kwargs)
        last = response.get("LastEvaluatedKey")
        return [_ingestion(i) for i in response["Items"]], (last["by_source_sk"]["S"] if last else None)

    def of_source(self, source: str) -> list[Ingestion]:
        """Every ingestion of a source, newest first."""
        out: list[Ingestion] = []
        after = None
        while True:
            page, after = self.page(source, 1000, after)
            out += page
            if after is None:
                return out
