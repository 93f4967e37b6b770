"""Data access for erasure: the sealed work item of an erasure in progress, the state machine's executions, and the
events that tell source owners what to delete at the origin.

Key shapes (pk / sk):
  ControlTable  TENANT#<t> / ERASURE#<request id>          sealed work item (what was located: record IDs, tokens,
                                                           profile IDs, blind references), deleted on completion
  KeysTable     TENANT#<t> / ERASURE#<request id>#K#<kid>  its wrapped data key
Execution input and output carry the request ID and step names only (AWS keeps execution history for 90 days,
where no erasure can reach it); a step reads what it needs from the work item.
"""
import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from profilevault.storage.dynamo import DynamoDBClient, Tables, batch_write, key, query_prefix
from profilevault.storage.sealed import Address, SealedDocument, data_item, document_of, get_with_key, key_item

ERASURES = "erasures"  # the logical table name bound into the work item's ciphertext
EVENT_SOURCE = "profilevault.erasure"
EVENT_DETAIL_TYPE = "Erase at origin"
_IDS_PER_EVENT = 1000  # record IDs per event, well under EventBridge's 256 KiB per entry
_ENTRIES_PER_CALL = 10  # PutEvents takes at most 10 entries


class ErasureWorkRepository:
    """One tenant's erasure work items, sealed like records (privacy.erasure seals and opens them)."""

    def __init__(self, dynamodb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._tables = dynamodb, tables
        self._pk = f"TENANT#{tenant}"

    def address(self, request_id: str) -> Address:
        return Address(ERASURES, self._pk, f"ERASURE#{request_id}")

    def get(self, request_id: str) -> SealedDocument | None:
        a = self.address(request_id)
        found = get_with_key(self._ddb, self._tables.control, self._tables.keys, a.pk, a.sk)
        return document_of(ERASURES, *found) if found else None

    def put(self, sealed: SealedDocument) -> None:
        """Key first, then the item naming it, then the key of the version it replaced (as every sealed item)."""
        batch_write(self._ddb, self._tables.keys, [key_item(sealed)])
        old = self._ddb.put_item(TableName=self._tables.control, Item=data_item(sealed),
                                 ReturnValues="ALL_OLD").get("Attributes")
        if old:
            k = sealed.address.key_address(old["kid"]["S"])
            batch_write(self._ddb, self._tables.keys, [], [key(k.pk, k.sk)])

    def delete(self, request_id: str) -> None:
        """The item and every key it ever had: what was located is crypto-shredded with it."""
        a = self.address(request_id)
        self._ddb.delete_item(TableName=self._tables.control, Key=key(a.pk, a.sk))
        batch_write(self._ddb, self._tables.keys, [], [
            key(a.pk, k["sk"]["S"]) for k in query_prefix(self._ddb, self._tables.keys, a.pk, f"{a.sk}#K#",
                                                          projection="sk")])


class ErasureExecutions:
    """The erasure state machine's executions; each is named `<request id>-<attempt>`."""

    def __init__(self, stepfunctions: Any, state_machine_arn: str):
        self._sfn = stepfunctions
        self._arn = state_machine_arn

    def start(self, name: str, execution_input: dict) -> None:
        """Starting the same execution twice (a retried call) is a no-op."""
        try:
            self._sfn.start_execution(stateMachineArn=self._arn, name=name,
                                      input=json.dumps(execution_input, sort_keys=True))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise

    def succeed(self, task_token: str, output: dict) -> bool:
        """Reports a waited-for task done; False when nobody waits any more (the execution timed out or ended)."""
        return self._report(self._sfn.send_task_success, taskToken=task_token,
                            output=json.dumps(output, sort_keys=True))

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        return self._report(self._sfn.send_task_failure, taskToken=task_token, error=error[:256], cause=cause[:1000])

    @staticmethod
    def _report(call: Callable[..., Any], **kwargs: Any) -> bool:
        try:
            call(**kwargs)
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] in ("TaskDoesNotExist", "TaskTimedOut", "InvalidToken"):
                return False
            raise


class OriginNotices:
    """Events on the erasure bus, one per source (split past 1,000 IDs): which record IDs to delete at the origin
    (GDPR Art. 17(2), 19). Nothing else about the person: the request ID, the source and its record IDs."""

    def __init__(self, events: Any, bus_name: str, tenant: str):
        self._events = events
        self._bus = bus_name
        self._tenant = tenant

    def publish(self, request_id: str, record_ids_by_source: dict[str, list[str]]) -> int:
        entries: list[Any] = []
        for source, record_ids in sorted(record_ids_by_source.items()):
            ids = sorted(set(record_ids))
            for start in range(0, len(ids), _IDS_PER_EVENT):
                detail = {"tenant": self._tenant, "request_id": request_id, "source": source,
                          "record_ids": ids[start:start + _IDS_PER_EVENT]}
                entries.append({"Source": EVENT_SOURCE, "DetailType": EVENT_DETAIL_TYPE, "EventBusName": self._bus,
                                "Detail": json.dumps(detail, sort_keys=True)})
        for start in range(0, len(entries), _ENTRIES_PER_CALL):
            chunk = entries[start:start + _ENTRIES_PER_CALL]
            response = self._events.put_events(Entries=chunk)
            if response.get("FailedEntryCount"):
                codes = sorted({e.get("ErrorCode", "?") for e in response["Entries"] if e.get("ErrorCode")})
                raise RuntimeError(f"EventBridge refused {response['FailedEntryCount']} event(s): {codes}")
        return len(entries)
