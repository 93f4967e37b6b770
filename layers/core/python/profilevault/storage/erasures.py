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

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from profilevault.keys import vault
from profilevault.keys.keyring import TenantKeyring
from profilevault.storage import store

ERASURES = "erasures"  # the logical table name bound into the work item's ciphertext
EVENT_SOURCE = "profilevault.erasure"
EVENT_DETAIL_TYPE = "Erase at origin"
_IDS_PER_EVENT = 1000  # record IDs per event, well under EventBridge's 256 KiB per entry
_ENTRIES_PER_CALL = 10  # PutEvents takes at most 10 entries


class SubjectRecord(BaseModel):
    source: str
    token: str
    record_id: str


class ErasureWork(BaseModel):
    """What an erasure found and did so far; sealed, because record IDs identify the person at the origin."""

    request_id: str
    attempt: int = 1
    verify_loops: int = 0
    records: list[SubjectRecord] = Field(default_factory=list)
    profile_ids: list[str] = Field(default_factory=list)
    blind_refs: list[str] = Field(default_factory=list)
    # Key items of the profile versions that held the person (profile ID -> key sort keys), checked gone by verify.
    profile_keys: dict[str, list[str]] = Field(default_factory=dict)
    recompute_run_id: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    landing_files: list[dict] = Field(default_factory=list)

    def add_located(self, records: list[SubjectRecord], profile_ids: list[str], blind_refs: list[str]) -> None:
        """Grows the set (a later locate may find what a racing writer added; nothing found before is forgotten)."""
        known = {(r.source, r.token) for r in self.records}
        self.records += [r for r in records if (r.source, r.token) not in known]
        self.profile_ids = sorted(set(self.profile_ids) | set(profile_ids))
        self.blind_refs = sorted(set(self.blind_refs) | set(blind_refs))


class ErasureWorkRepository:
    """One tenant's erasure work items, sealed under their own data keys like records."""

    def __init__(self, dynamodb, control_table: str, keys_table: str, tenant: str, keyring: TenantKeyring):
        self._ddb = dynamodb
        self._control, self._keys = control_table, keys_table
        self._pk = store.tenant_pk(tenant)
        self._keyring = keyring

    def _key(self, sk: str) -> dict:
        return {"pk": {"S": self._pk}, "sk": {"S": sk}}

    @staticmethod
    def _sk(request_id: str) -> str:
        return f"ERASURE#{request_id}"

    def load(self, request_id: str) -> ErasureWork | None:
        item = self._ddb.get_item(TableName=self._control, Key=self._key(self._sk(request_id)),
                                  ConsistentRead=True).get("Item")
        if not item:
            return None
        key_item = self._ddb.get_item(TableName=self._keys, ConsistentRead=True,
                                      Key=self._key(store.key_sk(self._sk(request_id), item["kid"]["S"])))["Item"]
        return ErasureWork.model_validate(vault.open_document(self._keyring, ERASURES, item, key_item))

    def save(self, work: ErasureWork) -> None:
        """Key first, then the item naming it, then the key of the version it replaced (as every sealed item)."""
        sk = self._sk(work.request_id)
        item, key_item = vault.seal_document(self._keyring, ERASURES, self._pk, sk, work.model_dump(mode="json"))
        self._ddb.put_item(TableName=self._keys, Item=key_item)
        old = self._ddb.put_item(TableName=self._control, Item=item, ReturnValues="ALL_OLD").get("Attributes")
        if old:
            self._delete_keys([store.key_sk(sk, old["kid"]["S"])])

    def delete(self, request_id: str) -> None:
        """The item and every key it ever had: what was located is crypto-shredded with it."""
        sk = self._sk(request_id)
        self._ddb.delete_item(TableName=self._control, Key=self._key(sk))
        self._delete_keys([k["sk"]["S"] for k in store.query_prefix(self._ddb, self._keys, self._pk, f"{sk}#K#",
                                                                   projection="sk")])

    def _delete_keys(self, sks: list[str]) -> None:
        store.batch_write(self._ddb, self._keys, [], [self._key(sk) for sk in sks])


class ErasureExecutions:
    """The erasure state machine's executions; each is named `<request id>-<attempt>`."""

    def __init__(self, stepfunctions, state_machine_arn: str):
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
    def _report(call, **kwargs) -> bool:
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

    def __init__(self, events, bus_name: str, tenant: str):
        self._events = events
        self._bus = bus_name
        self._tenant = tenant

    def publish(self, request_id: str, record_ids_by_source: dict[str, list[str]]) -> int:
        entries = []
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
