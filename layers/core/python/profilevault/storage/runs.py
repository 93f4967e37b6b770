"""Runs: unification runs, refreshes and source purges, expiring through DynamoDB TTL after 90 days.

    ControlTable  TENANT#<t> / RUN#<run id>     doc (the Run as sorted JSON text), status (what writes are
                                                conditional on), expires_at (epoch seconds)
      index ByTime: by_time_pk TENANT#<t>#RUNS / by_time_sk <queued_at>#<run id>

    runs = RunRepository(ddb, tables, tenant)
    runs.add(run)                                   # a new, queued run
    runs.get(run_id)                                # -> Run | None
    runs.save(run)                                  # Conflict unless the stored status may precede run.status
                                                    # (domain.runs.MAY_FOLLOW): a status never moves back
    runs.newer_queued(run)                          # is a run of its trigger queued after it and not started?
    page, after = runs.page(limit, after)           # newest first; `after` is a Run.position
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from profilevault.domain.runs import MAY_FOLLOW, Run
from profilevault.errors import Conflict
from profilevault.storage.dynamo import DynamoDBClient, Item, Tables, is_conditional_failure, key, to_item

RETENTION_SECONDS = 90 * 24 * 3600
BY_TIME = "ByTime"  # the control table's index of runs by the time they were queued
_PREFIX = "RUN#"


class RunRepository:
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._table = ddb, tables.control
        self._pk, self._by_time_pk = f"TENANT#{tenant}", f"TENANT#{tenant}#RUNS"

    def _item(self, run: Run) -> Item:
        return to_item({"pk": self._pk, "sk": _PREFIX + run.id, "doc": json.dumps(run.shown(), sort_keys=True),
                        "status": run.status, "by_time_pk": self._by_time_pk, "by_time_sk": run.position,
                        "expires_at": int(time.time()) + RETENTION_SECONDS})

    def add(self, run: Run) -> None:
        self._ddb.put_item(TableName=self._table, Item=self._item(run), ConditionExpression="attribute_not_exists(pk)")

    def get(self, run_id: str) -> Run | None:
        item = self._ddb.get_item(TableName=self._table, Key=key(self._pk, _PREFIX + run_id),
                                  ConsistentRead=True).get("Item")
        return _run(item) if item else None

    def save(self, run: Run) -> None:
        """Stores the run, if its stored status may precede the new one; Conflict (nothing written) otherwise."""
        before = sorted(MAY_FOLLOW[run.status]) if run.status in MAY_FOLLOW else [run.status]
        values = {f":s{i}": {"S": s} for i, s in enumerate(before)}
        try:
            self._ddb.put_item(TableName=self._table, Item=self._item(run),
                               ConditionExpression=f"#status IN ({', '.join(values)})",
                               ExpressionAttributeNames={"#status": "status"},
                               ExpressionAttributeValues=values)
        except ClientError as error:
            if is_conditional_failure(error):
                raise Conflict(f"run {run.id} cannot become {run.status} now") from error
            raise

    def newer_queued(self, run: Run) -> bool:
        """Is a run of the same trigger queued after `run` and not started yet? (The index is eventually
        consistent: a run queued a moment ago may be missed, which costs only a run that was not needed.)"""
        for other in self._query(ScanIndexForward=True, KeyConditionExpression="by_time_pk = :p AND by_time_sk > :t",
                                 ExpressionAttributeValues={":p": {"S": self._by_time_pk},
                                                            ":t": {"S": run.position}}):
            if other.id != run.id and other.trigger == run.trigger and other.status == "queued":
                return True
        return False

    def _query(self, **kwargs: Any) -> Iterator[Run]:
        start = None
        while True:
            paging: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            page = self._ddb.query(TableName=self._table, IndexName=BY_TIME, **kwargs, **paging)
            yield from (_run(i) for i in page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def page(self, limit: int, after: str | None) -> tuple[list[Run], str | None]:
        """Up to `limit` runs, newest first, after the one at position `after` (what this returns as the next)."""
        kwargs: dict[str, Any] = {}
        if after:
            kwargs["ExclusiveStartKey"] = {**key(self._pk, _PREFIX + after.rsplit("#", 1)[-1]),
                                           "by_time_pk": {"S": self._by_time_pk}, "by_time_sk": {"S": after}}
        response = self._ddb.query(TableName=self._table, IndexName=BY_TIME, KeyConditionExpression="by_time_pk = :p",
                                   ExpressionAttributeValues={":p": {"S": self._by_time_pk}}, ScanIndexForward=False,
                                   Limit=limit, **kwargs)
        last = response.get("LastEvaluatedKey")
        return [_run(i) for i in response["Items"]], (last["by_time_sk"]["S"] if last else None)


def _run(item: Item) -> Run:
    return Run.model_validate_json(item["doc"]["S"])
