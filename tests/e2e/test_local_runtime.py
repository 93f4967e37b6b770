"""The local stack's stand-ins, in-process: the HTTP API's JWT authorizer and event shape, the SQS poller's batch
semantics, moto-initiated invokes and the state-machine path of deploy()."""
import dataclasses
import json
import socket
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from profilevault_local import runtime
from profilevault_local.httpapi import HttpApiAdapter
from profilevault_local.stack import FunctionSpec, HttpRoute, JwtAuthorizer, QueueMapping, deploy
from profilevault_local.tokens import mint_token, new_issuer

pytestmark = pytest.mark.e2e

REGION = "eu-central-1"


def fake_function(name: str, handler) -> runtime.LocalFunction:
    spec = FunctionSpec(logical_id=name, name=name, arn=f"arn:aws:lambda:{REGION}:123456789012:function:{name}",
                        code_dir=Path("."), handler="app.lambda_handler", env={}, timeout=30, memory_mb=128)
    return runtime.LocalFunction(spec, handler)


# ------------------------------------------------------------------ HTTP API adapter

@pytest.fixture
def api():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    issuer = new_issuer(f"http://127.0.0.1:{port}/", "profilevault")
    seen = []

    def echo(event, context):
        seen.append(event)
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps({"ok": True}),
                "cookies": ["a=1"]}

    routes = [HttpRoute("HttpApi", "GET", "/v1/health", "Api", None),
              HttpRoute("HttpApi", "ANY", "/v1/{proxy+}", "Api", "Bearer")]
    authorizers = {"Bearer": JwtAuthorizer("Bearer", issuer.url, ("profilevault",), "$request.header.Authorization")}
    adapter = HttpApiAdapter(routes=routes, functions={"Api": fake_function("Api", echo)}, authorizers=authorizers,
                             issuer=issuer, account_id="123456789012")
    adapter.serve("127.0.0.1", port)
    yield f"http://127.0.0.1:{port}", issuer, seen
    adapter.close()


def get(url: str, token: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_expired_token_is_401(api):
    # Given a token of the right issuer and key that expired a minute ago
    url, issuer, seen = api
    token = mint_token(issuer, "admin", now=int(time.time()) - 3600, ttl_seconds=3540)
    # When it is used; Then API Gateway's answer comes back and the function is not called
    assert get(f"{url}/v1/sources", token)[::2] == (401, b'{"message":"Unauthorized"}')
    assert seen == []


def test_token_for_another_audience_is_401(api):
    # Given a token signed by the stack's key but for another audience
    url, issuer, _ = api
    token = mint_token(dataclasses.replace(issuer, audience="someone-else"), "admin")
    # When it is used; Then the authorizer refuses it
    assert get(f"{url}/v1/sources", token)[0] == 401


def test_token_of_another_issuer_is_401(api):
    # Given a token signed by the stack's key but naming another issuer
    url, issuer, _ = api
    token = mint_token(dataclasses.replace(issuer, url="https://elsewhere.example.org/"), "admin")
    # When it is used; Then the authorizer refuses it
    assert get(f"{url}/v1/sources", token)[0] == 401


def test_valid_token_delivers_a_payload_v2_event_with_string_claims(api):
    # Given a valid admin token
    url, issuer, seen = api
    token = mint_token(issuer, "admin")
    # When a proxied path with a query string is called
    status, headers, body = get(f"{url}/v1/sources/crm?limit=5&limit=6", token)
    # Then the function receives the event API Gateway would build and its response comes back
    assert (status, json.loads(body), headers["set-cookie"]) == (200, {"ok": True}, "a=1")
    event = seen[0]
    assert (event["version"], event["routeKey"], event["rawPath"]) == ("2.0", "ANY /v1/{proxy+}", "/v1/sources/crm")
    assert event["pathParameters"] == {"proxy": "sources/crm"}
    assert event["queryStringParameters"] == {"limit": "5,6"}
    assert event["requestContext"]["http"]["method"] == "GET"
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["pv_role"] == "admin" and isinstance(claims["exp"], str)


def test_route_without_authorizer_needs_no_token(api):
    # Given the health route (Auth NONE); When it is called without a token; Then it reaches the function
    url, _, seen = api
    assert get(f"{url}/v1/health")[0] == 200
    assert "authorizer" not in seen[0]["requestContext"]


@pytest.fixture
def schedules():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    issuer = new_issuer(f"http://127.0.0.1:{port}/", "profilevault")
    fired = []
    authorizers = {"Bearer": JwtAuthorizer("Bearer", issuer.url, ("profilevault",), "$request.header.Authorization")}
    adapter = HttpApiAdapter(routes=[], functions={}, authorizers=authorizers, issuer=issuer,
                             account_id="123456789012", fire_schedule=fired.append)
    adapter.serve("127.0.0.1", port)
    yield f"http://127.0.0.1:{port}/_local/schedules/RefreshSchedule", issuer, fired
    adapter.close()


def post(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("analyst", 403), ("privacy_officer", 403)])
def test_firing_a_schedule_needs_an_admin_token(schedules, role, status):
    # Given the local schedule endpoint (a refresh deletes records, like POST /v1/refreshes)
    url, issuer, fired = schedules
    # When it is called without a token or with another role's
    token = mint_token(issuer, role, tenant="default") if role else None
    # Then it is refused and nothing fires
    assert (post(url, token), fired) == (status, [])


def test_an_admin_fires_a_schedule(schedules):
    # Given the local schedule endpoint; When an admin calls it; Then the schedule fires
    url, issuer, fired = schedules
    assert (post(url, mint_token(issuer, "admin", tenant="default")), fired) == (200, ["RefreshSchedule"])


# ------------------------------------------------------------------ SQS poller semantics

@pytest.fixture
def queue(aws_env):
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="work", Attributes={
        "VisibilityTimeout": "300",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = QueueMapping(uuid="m", function_logical_id="Fn", queue_arn=arn, queue_url=url, batch_size=10,
                           function_response_types=("ReportBatchItemFailures",))
    return sqs, mapping, dlq


def counts(sqs, url: str) -> tuple[int, int]:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def test_partial_batch_failure_keeps_only_the_failed_message(queue):
    # Given three messages and a function reporting the second as failed
    sqs, mapping, _ = queue
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=body)
    events = []

    def handler(event, context):
        events.append(event)
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "b"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    # When the poller processes a batch
    runtime.process_batch(sqs, mapping, fake_function("Fn", handler), REGION, wait_seconds=0)
    # Then the Lambda SQS event was complete and only the failed message is left (in flight, until its retry)
    record = events[0]["Records"][0]
    assert {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody", "eventSource",
            "eventSourceARN", "awsRegion"} <= set(record)
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == mapping.queue_arn
    assert counts(sqs, mapping.queue_url) == (0, 1)


def test_raised_exception_keeps_the_whole_batch(queue):
    # Given two messages and a function that raises
    sqs, mapping, _ = queue
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=body)

    def handler(event, context):
        raise RuntimeError("boom")

    # When the poller processes a batch; Then both stay for a retry
    runtime.process_batch(sqs, mapping, fake_function("Fn", handler), REGION, wait_seconds=0)
    assert counts(sqs, mapping.queue_url) == (0, 2)


def test_s3_test_event_is_deleted_without_calling_the_function(queue):
    # Given the test event S3 sends when a notification is configured
    sqs, mapping, _ = queue
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=json.dumps({"Service": "Amazon S3",
                                                                         "Event": "s3:TestEvent"}))
    calls = []
    # When the poller processes it; Then it is gone and the function never saw it
    runtime.process_batch(sqs, mapping, fake_function("Fn", lambda e, c: calls.append(e)), REGION, wait_seconds=0)
    assert calls == [] and counts(sqs, mapping.queue_url) == (0, 0)


def test_message_failing_max_receive_count_times_moves_to_the_dlq(queue, monkeypatch):
    # Given a function that always fails and no back-off (so retries happen at once)
    sqs, mapping, dlq = queue
    monkeypatch.setattr(runtime, "retry_delay_seconds", lambda count: 0)
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="poison")
    fn = fake_function("Fn", lambda e, c: {"batchItemFailures": [{"itemIdentifier": e["Records"][0]["messageId"]}]})
    # When the poller keeps polling
    for _ in range(4):
        runtime.process_batch(sqs, mapping, fn, REGION, wait_seconds=0)
    # Then after maxReceiveCount (2) receives moto's redrive put it in the DLQ
    assert counts(sqs, mapping.queue_url) == (0, 0)
    assert counts(sqs, dlq) == (1, 0)


# ------------------------------------------------------------------ deploy(): state machines, moto-initiated invokes

SAM_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Double:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.lambda_handler
      Runtime: python3.13
      Environment:
        Variables:
          WORKFLOW_ARN: !Ref Workflow
  Workflow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: workflow.asl.json
      DefinitionSubstitutions:
        DoubleArn: !GetAtt Double.Arn
      Policies:
        - LambdaInvokePolicy: { FunctionName: !Ref Double }
"""

ASL = {"StartAt": "Double", "States": {"Double": {"Type": "Task", "Resource": "${DoubleArn}", "End": True}}}


@pytest.fixture
def sfn_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield
    runtime.uninstall_invoke_hook()


def test_state_machine_runs_its_lambda_task_in_process(tmp_path, sfn_env):
    # Given a SAM template with a state machine whose task is a function of the same template
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(textwrap.dedent("""
        def lambda_handler(event, context):
            return {"doubled": event["n"] * 2}
    """))
    (tmp_path / "workflow.asl.json").write_text(json.dumps(ASL))
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE)
    # When it is deployed and the function is served in-process
    stack = deploy(tmp_path / "template.yaml", REGION)
    functions = runtime.load_functions(stack.functions.values())
    runtime.install_invoke_hook(functions.values())
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = stack.state_machines["Workflow"]
    execution = sfn.start_execution(stateMachineArn=arn, name="run-1", input=json.dumps({"n": 21}))
    deadline = time.monotonic() + 10
    while (result := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Then the execution ran the handler, and the function's reference to the state machine resolved to its ARN
    assert (result["status"], json.loads(result["output"])) == ("SUCCEEDED", {"doubled": 42})
    assert stack.functions["Double"].env["WORKFLOW_ARN"] == arn
