"""One fixture builds every AWS resource from template.yaml in moto (in-process), so tests cannot drift from the
infrastructure. Handlers are the real ones, loaded from functions/<name>/app.py with the environment the
template gives them."""
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-central-1"
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
              "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


@dataclass
class Stack:
    """The deployed template plus the real handlers and helpers to drive them the way AWS would."""

    deployed: object
    env: dict
    handlers: dict
    s3: object
    sqs: object
    dynamodb: object
    kms: object

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
        return self.sqs.receive_message(QueueUrl=self.deployed.queues[queue], MaxNumberOfMessages=max_messages,
                                        WaitTimeSeconds=0, AttributeNames=["All"]).get("Messages", [])

    def deliver(self, messages: list[dict] | None = None, queue: str = "IngestQueue",
                function: str = "IngestFunction") -> dict:
        """Delivers queued messages to a function like the SQS event source mapping does: failed ones stay."""
        messages = self.queue_messages(queue) if messages is None else messages
        url = self.deployed.queues[queue]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        event = {"Records": [sqs_record(m, queue_arn) for m in messages]}
        result = self.handlers[function](event, lambda_context(function))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return result

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


def sqs_record(message: dict, queue_arn: str) -> dict:
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": message.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION}


class _Context:
    def __init__(self, name: str):
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def lambda_context(name: str) -> _Context:
    return _Context(name)


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


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def stack(aws_env, monkeypatch, request) -> Stack:
    """template.yaml deployed in moto, with the real ingest and API handlers loaded.
    `@pytest.mark.handler_env(NAME="value")` overrides what the template gives the functions."""
    from profilevault.config import get_settings
    from profilevault_local.ddb_atomic import make_conditional_writes_atomic
    from profilevault_local.kms_state import enforce_kms_key_state
    from profilevault_local.runtime import load_handler
    from profilevault_local.stack import deploy

    enforce_kms_key_state()
    make_conditional_writes_atomic()
    deployed = deploy(ROOT / "template.yaml", REGION)
    env = {}
    for spec in deployed.functions.values():
        env.update(spec.env)
    env["PV_INGESTION_BATCH_WINDOW_SECONDS"] = "0"  # tests run queued jobs themselves, at once
    marker = request.node.get_closest_marker("handler_env")
    env.update(marker.kwargs if marker else {})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ProfileVaultTest")
    get_settings.cache_clear()
    handlers = {}
    for logical_id in ("IngestFunction", "IngestDeadLettersFunction", "PrivacyApiFunction", "RefreshFunction"):
        spec = deployed.functions[logical_id]
        handlers[logical_id] = load_handler(spec.code_dir, spec.handler)
    yield Stack(deployed=deployed, env=env, handlers=handlers, s3=boto3.client("s3", region_name=REGION),
                sqs=boto3.client("sqs", region_name=REGION), dynamodb=boto3.client("dynamodb", region_name=REGION),
                kms=boto3.client("kms", region_name=REGION))
    get_settings.cache_clear()
    for name in [m for m in sys.modules if m.startswith("_pv_lambda_")]:
        del sys.modules[name]
