"""What tests use to drive the stack built from template.yaml: the `Stack` the `stack` fixture yields, the events
API Gateway and EventBridge send, a Lambda context, and the session's one deployment of the template into moto
(built once, emptied before each test). Import it as `from tests.helpers import ...`."""
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import requests
from botocore.exceptions import ClientError

from profilevault_local import runtime
from profilevault_local.stack import DeployedStack, QueueMapping

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-central-1"
ACCOUNT_ID = "123456789012"
MOTO_RESET_URL = "http://motoapi.amazonaws.com/moto-api/reset"
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


def lambda_context(name: str, timeout_seconds: int = 300) -> runtime.LambdaContext:
    """The context Lambda passes a function (the local stack's, so tests and the local stack share one)."""
    return runtime.LambdaContext(function_name=name, memory_limit_in_mb=1024, timeout_seconds=timeout_seconds,
                                 invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
                                 log_stream_name="test")


def sample_event(name: str) -> dict:
    """A sample event from events/, as the deployed function receives it."""
    return json.loads((ROOT / "events" / name).read_text())


def api_event(method: str, path: str, role: str | None, body=None, query: dict | None = None,
              raw_body: str | None = None) -> dict:
    """events/api_request.json with this request's method, path, query, body and role claim."""
    event = sample_event("api_request.json")
    query = query or {}
    context = event["requestContext"]
    context["http"].update(method=method, path=path)
    context["requestId"] = str(uuid.uuid4())
    context["authorizer"]["jwt"]["claims"] = {**context["authorizer"]["jwt"]["claims"], "sub": f"test-{role}",
                                              "pv_role": role} if role else {}
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    event.update(rawPath=path, rawQueryString="&".join(f"{k}={v}" for k, v in query.items()),
                 queryStringParameters=query or None, body=text)
    return event


@dataclass
class Stack:
    """The deployed template plus the real handlers and helpers to drive them the way AWS would."""

    deployed: DeployedStack
    env: dict
    handlers: dict
    s3: object
    sqs: object
    dynamodb: object
    kms: object
    functions: dict[str, runtime.LocalFunction] = field(default_factory=dict)  # logical ID -> loaded function

    @property
    def landing_bucket(self) -> str:
        return self.deployed.buckets["LandingBucket"]

    @property
    def vault_bucket(self) -> str:
        return self.deployed.buckets["VaultBucket"]

    @property
    def tenant_key_arn(self) -> str:
        return self.env["PV_DEFAULT_KMS_KEY_ARN"]

    def api(self, method: str, path: str, role: str | None = "admin", body=None, query: dict | None = None,
            raw_body: str | None = None, headers: dict | None = None) -> tuple[int, dict, dict]:
        """Calls the API handler with the HTTP API v2 event API Gateway would send after its JWT authorizer."""
        event = api_event(method, path, role, body, query, raw_body)
        event["headers"].update(headers or {})
        response = self.handlers["PrivacyApiFunction"](event, lambda_context("PrivacyApiFunction"))
        text = response.get("body") or "null"
        return response["statusCode"], json.loads(text), response.get("headers", {})

    def drop(self, source: str, name: str, body: bytes, kind: str = "full") -> str:
        key = f"sources/{source}/{kind}/{name}"
        self.s3.put_object(Bucket=self.landing_bucket, Key=key, Body=body)
        return key

    def queue_messages(self, queue: str = "IngestQueue", max_messages: int = 10) -> list[dict]:
        """Receives what is visible on a queue (each receive counts, as in SQS)."""
        return self.sqs.receive_message(QueueUrl=self.deployed.queues[queue], MaxNumberOfMessages=max_messages,
                                        WaitTimeSeconds=0, AttributeNames=["All"]).get("Messages", [])

    def deliver(self, messages: list[dict] | None = None, queue: str = "IngestQueue",
                function: str = "IngestFunction") -> dict:
        """Delivers messages to a function through the local stack's SQS delivery (`runtime.deliver_batch`, what its
        pollers run): what succeeded is deleted, what failed stays in flight until the queue's visibility timeout
        passes (as in Lambda; `make_visible` lets it pass) and reaches the dead-letter queue after maxReceiveCount
        receives. Given messages go as one batch and the function's response is returned; without messages, every
        visible one is received and delivered once, a batch of the mapping's size at a time, and the failures of
        all batches are returned. An exception the function raised is raised here, after its batch was failed."""
        mapping, fn = self._mapping(queue, function), self.functions[function]
        if messages is not None:
            return self._deliver(mapping, fn, messages)
        failures = []
        while batch := runtime.receive_batch(self.sqs, mapping, wait_seconds=0):
            failures += self._deliver(mapping, fn, batch)["batchItemFailures"]
        return {"batchItemFailures": failures}

    def make_visible(self, messages: list[dict], queue: str = "IngestQueue") -> None:
        """The queue's visibility timeout passes for these received messages: they can be received again."""
        for m in messages:
            self.sqs.change_message_visibility(QueueUrl=self.deployed.queues[queue], ReceiptHandle=m["ReceiptHandle"],
                                               VisibilityTimeout=0)

    def run_jobs(self) -> int:
        """Runs every queued background job (unification runs, purges, refreshes), one at a time."""
        done = 0
        while messages := self.queue_messages("JobsQueue", max_messages=1):
            assert self.deliver(messages, "JobsQueue", "RefreshFunction")["batchItemFailures"] == []
            done += 1
        return done

    def ingest(self, source: str, name: str, body: bytes, kind: str = "full") -> None:
        """Drops a file, delivers its notification and runs the jobs it queued."""
        self.drop(source, name, body, kind)
        assert self.deliver()["batchItemFailures"] == []
        self.run_jobs()

    def register(self, name: str, fields: dict, fmt: str = "csv", primary_key: str = "id", **extra) -> dict:
        status, body, _ = self.api("PUT", f"/v1/sources/{name}",
                                   body={"format": fmt, "primary_key": primary_key, "fields": fields, **extra})
        assert status in (200, 201), body
        return body

    def stored_bytes(self) -> bytes:
        """Every byte at rest: all DynamoDB items, all S3 objects, all queue messages (for canary checks)."""
        chunks = []
        for table in self.deployed.tables.values():
            for page in self.dynamodb.get_paginator("scan").paginate(TableName=table):
                chunks.append(repr(page["Items"]).encode())
        for bucket in self.deployed.buckets.values():
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    chunks.append(obj["Key"].encode())
                    chunks.append(self.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        for url in self.deployed.queues.values():
            for m in self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
                    "Messages", []):
                chunks.append(m["Body"].encode())
        return b"\n".join(chunks)

    def _mapping(self, queue: str, function: str) -> QueueMapping:
        url = self.deployed.queues[queue]
        for mapping in self.deployed.queue_mappings:
            if mapping.queue_url == url and mapping.function_logical_id == function:
                return mapping
        raise LookupError(f"template.yaml has no SQS event source mapping from {queue} to {function}")

    def _deliver(self, mapping: QueueMapping, fn: runtime.LocalFunction, messages: list[dict]) -> dict:
        delivery = runtime.deliver_batch(self.sqs, mapping, fn, messages, REGION, retry_delay=None)
        if delivery.error is not None:
            raise delivery.error
        return delivery.response if delivery.response is not None else {"batchItemFailures": []}


class TemplateDeployment:
    """template.yaml deployed into moto once per session; `fresh()` empties what tests wrote before each test.

    moto's data lives in module-level backends, so it survives between tests while no other mock resets it. A test
    elsewhere that starts its own `mock_aws()` resets every backend; `fresh()` notices (the stack's ID is gone) and
    deploys again. It also deploys again, after resetting moto, when a test left objects that Object Lock keeps (the
    audit anchors are write-once in COMPLIANCE mode, in moto as in AWS)."""

    def __init__(self) -> None:
        self.deployed: DeployedStack | None = None
        self._stack_id: str | None = None
        self._key_ids: list[str] = []  # KMS keys the template created, restored to Enabled before each test
        self._table_keys: dict[str, list[str]] = {}  # table name -> key attribute names
        self.clients: dict[str, object] = {}  # service -> boto3 client, made once (each costs milliseconds)

    def client(self, service: str):
        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=REGION)
        return self.clients[service]

    def fresh(self) -> DeployedStack:
        """The deployed template with every table, bucket and queue empty and its KMS keys enabled."""
        if self._still_deployed():
            if self._empty():
                return self.deployed
            requests.post(MOTO_RESET_URL, timeout=30).raise_for_status()  # moto's documented reset of all data
        self._deploy()
        return self.deployed

    def _still_deployed(self) -> bool:
        if self.deployed is None:
            return False
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.deployed.stack_name)["Stacks"]
        except ClientError:
            return False
        return stacks[0]["StackId"] == self._stack_id

    def _deploy(self) -> None:
        from profilevault_local.ddb_atomic import make_conditional_writes_atomic
        from profilevault_local.kms_state import enforce_kms_key_state
        from profilevault_local.stack import deploy

        enforce_kms_key_state()
        make_conditional_writes_atomic()
        self.deployed = deploy(ROOT / "template.yaml", REGION)
        [described] = self.client("cloudformation").describe_stacks(StackName=self.deployed.stack_name)["Stacks"]
        self._stack_id = described["StackId"]
        self._key_ids = list(self.deployed.kms_keys.values())
        self._table_keys = {}
        for table in self.deployed.tables.values():
            schema = self.client("dynamodb").describe_table(TableName=table)["Table"]["KeySchema"]
            self._table_keys[table] = [k["AttributeName"] for k in schema]
        self._empty()  # the S3 test event the bucket notification sent

    def _empty(self) -> bool:
        """Empties what tests write; False if a bucket keeps objects its Object Lock protects."""
        kms = self.client("kms")
        for key_id in self._key_ids:
            # (DescribeKey would tell the state, but moto's fails on a key CloudFormation created with a policy.)
            try:
                kms.cancel_key_deletion(KeyId=key_id)  # leaves a key that was pending deletion disabled
            except kms.exceptions.KMSInvalidStateException:
                pass  # it was not pending deletion
            kms.enable_key(KeyId=key_id)
        for table, key_names in self._table_keys.items():
            _empty_table(self.client("dynamodb"), table, key_names)
        emptied = all([_empty_bucket(self.client("s3"), bucket) for bucket in self.deployed.buckets.values()])
        for url in self.deployed.queues.values():
            self.client("sqs").purge_queue(QueueUrl=url)  # the stack fixture turns off moto's once-a-minute purge limit
        return emptied


def _empty_table(dynamodb, table: str, key_names: list[str]) -> None:
    names = {f"#k{i}": name for i, name in enumerate(key_names)}
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression=", ".join(names),
                                                   ExpressionAttributeNames=names)
    keys = [item for page in pages for item in page["Items"]]
    for start in range(0, len(keys), 25):
        requests = {table: [{"DeleteRequest": {"Key": key}} for key in keys[start:start + 25]]}
        while requests:
            requests = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems")


def _empty_bucket(s3, bucket: str) -> bool:
    """Deletes every version of every object (GOVERNANCE retention bypassed); False if some stay locked."""
    emptied = True
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objects:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True},
                                       BypassGovernanceRetention=True)
            emptied = emptied and not answer.get("Errors")
    return emptied
