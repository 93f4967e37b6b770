"""`profilevault local up` driven from outside, as a user would: a subprocess on free ports, its state file, the
HTTP API and the landing bucket over 127.0.0.1."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from samtranslator.yaml_helper import yaml_parse

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "profilevault"
STARTUP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict | None]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["content-type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for(probe, done, timeout: float = 60, interval: float = 0.3):
    """Calls probe() until done(result) holds or the timeout passes, and returns the last result (the assertions
    that follow say what was expected): a bound on waiting for the stack's threads, not a timed assertion."""
    deadline = time.monotonic() + timeout
    while not done(result := probe()) and time.monotonic() < deadline:
        time.sleep(interval)
    return result


class RunningStack:
    def __init__(self, tmp: Path, *extra: str):
        self.state_file = tmp / "local.json"
        self.log_path = tmp / "stack.log"
        self.log = open(self.log_path, "w")  # closed in stop()
        args = [str(CLI), "local", "up", "--api-port", str(free_port()), "--aws-port", str(free_port()),
                "--state-file", str(self.state_file), *extra]
        started = time.monotonic()
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        while not self.state_file.exists():
            if self.proc.poll() is not None or time.monotonic() - started > STARTUP_TIMEOUT:
                self.stop()
                pytest.fail(f"local stack did not start:\n{(tmp / 'stack.log').read_text()[-3000:]}")
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - started
        self.state = json.loads(self.state_file.read_text())
        self.api = self.state["api_url"]
        kw = {"endpoint_url": self.state["aws_endpoint_url"], "region_name": self.state["region"],
              "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self.s3, self.sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
        self.dynamodb, self.cfn = boto3.client("dynamodb", **kw), boto3.client("cloudformation", **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    stack = RunningStack(tmp_path_factory.mktemp("local-up"), "--no-demo")
    sys.stderr.write(f"\nlocal stack started in {stack.startup_seconds:.1f} s\n")
    yield stack
    stack.stop()


def foreign_token(state: dict, **overrides) -> str:
    """A well-formed token for this stack's issuer and audience, signed by a key the stack doesn't know."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": state["issuer"], "aud": state["audience"], "sub": "local-admin", "iat": now, "exp": now + 600,
              "pv_role": "admin", "pv_tenant": "default", **overrides}
    kid = jwt.get_unverified_header(state["tokens"]["admin"])["kid"]
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_state_file_lists_endpoints_resources_and_tokens(local):
    # Given a local stack started with --no-demo
    # When the state file is read
    state = local.state
    # Then it names every endpoint, resource and role token a client needs
    for key in ("api_url", "aws_endpoint_url", "region", "landing_bucket", "vault_bucket", "tables",
                "tenant_key_arn", "tokens", "jwks_url", "pid"):
        assert state.get(key), key
    assert set(state["tokens"]) == {"admin", "privacy_officer", "analyst", "auditor"}
    assert state["pid"] == local.proc.pid


def test_health_answers_without_a_token(local):
    # Given the running stack; When GET /v1/health is called without Authorization
    status, body = http("GET", f"{local.api}/v1/health")
    # Then the route (Auth NONE in the template) answers
    assert (status, body) == (200, {"status": "ok"})


def test_protected_route_without_token_is_401(local):
    # Given the running stack; When a protected route is called without a token
    status, body = http("GET", f"{local.api}/v1/sources")
    # Then the JWT authorizer refuses it the way API Gateway does
    assert (status, body) == (401, {"message": "Unauthorized"})


def test_protected_route_with_token_of_another_key_is_401(local):
    # Given a token with the right issuer, audience and kid but signed by another key
    token = foreign_token(local.state)
    # When it is used
    status, body = http("GET", f"{local.api}/v1/sources", token)
    # Then the signature check fails
    assert (status, body) == (401, {"message": "Unauthorized"})


def test_protected_route_with_role_token_reaches_the_function(local):
    # Given the admin token from the state file; When a protected route is called with it
    status, body = http("GET", f"{local.api}/v1/sources", local.state["tokens"]["admin"])
    # Then the function answers
    assert status == 200 and "items" in body


def test_unknown_route_is_404(local):
    # Given the running stack; When a path outside the template's routes is called
    status, body = http("GET", f"{local.api}/nowhere", local.state["tokens"]["admin"])
    # Then it is not found, as on API Gateway
    assert (status, body) == (404, {"message": "Not Found"})


def test_jwks_is_served_at_the_issuer(local):
    # Given the running stack; When its JWKS is fetched
    status, body = http("GET", local.state["jwks_url"])
    # Then it holds the RSA key the role tokens name
    kid = jwt.get_unverified_header(local.state["tokens"]["admin"])["kid"]
    assert status == 200 and [k["kid"] for k in body["keys"]] == [kid]


def test_state_file_is_readable_by_its_owner_only(local):
    # Given the running stack; When its state file's permissions are read; Then only its owner may read the tokens
    assert stat.S_IMODE(local.state_file.stat().st_mode) == 0o600


def test_token_command_prints_a_token_of_the_running_stack(local):
    # Given the running stack; When the CLI is asked for the admin token
    result = subprocess.run([str(CLI), "local", "token", "admin", "--state-file", str(local.state_file)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    # Then it prints one the API accepts
    assert result.returncode == 0, result.stderr
    assert http("GET", f"{local.api}/v1/sources", result.stdout.strip())[0] == 200


def test_banner_without_demo_suggests_only_what_works_without_it(local):
    # Given the stack started with --no-demo; When its banner has been printed
    deadline, text = time.monotonic() + 30, ""
    while "Ctrl-C stops it." not in text and time.monotonic() < deadline:
        text = local.log_path.read_text()
        time.sleep(0.2)
    # Then it gets the token through the CLI and suggests registering a source, not the demo's queries
    assert f"local token admin --state-file {local.state_file}" in text
    assert "no demo data loaded" in text and "anna.schmidt" not in text


def test_template_resources_exist_in_moto(local):
    # Given the template's tables, buckets and queues
    template = yaml_parse((ROOT / "template.yaml").read_text())
    wanted = {lid: r["Type"] for lid, r in template["Resources"].items()
              if r["Type"] in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue")}
    # When the local stack's CloudFormation resources are listed
    resources = local.cfn.list_stack_resources(StackName=local.state["stack_name"])["StackResourceSummaries"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    # Then each one exists in moto
    for logical_id, rtype in wanted.items():
        assert logical_id in physical, logical_id
        if rtype == "AWS::DynamoDB::Table":
            assert local.dynamodb.describe_table(TableName=physical[logical_id])["Table"]["TableStatus"] == "ACTIVE"
        elif rtype == "AWS::S3::Bucket":
            local.s3.head_bucket(Bucket=physical[logical_id])
        else:
            local.sqs.get_queue_attributes(QueueUrl=physical[logical_id], AttributeNames=["QueueArn"])


def test_landing_bucket_has_the_template_notification_and_lifecycle(local):
    # Given the landing bucket (moto's CloudFormation ignores both configurations)
    bucket = local.state["landing_bucket"]
    # When its configuration is read
    notifications = local.s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    rules = local.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    # Then both come from template.yaml
    assert notifications[0]["Events"] == ["s3:ObjectCreated:*"]
    assert notifications[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "sources/"}]
    assert rules[0]["Expiration"] == {"Days": 7}


def test_dropped_file_reaches_the_ingest_function_through_sqs(local):
    # Given a registered source
    admin = local.state["tokens"]["admin"]
    status, _ = http("PUT", f"{local.api}/v1/sources/e2e_drop", admin,
                     {"format": "csv", "primary_key": "id", "fields": {"mail": "email"}})
    assert status in (200, 201)
    # When a file is put into the landing bucket through the AWS endpoint
    local.s3.put_object(Bucket=local.state["landing_bucket"], Key="sources/e2e_drop/full/people.csv",
                        Body=b"id,mail\n1,one@example.org\n2,two@example.org\n")
    # Then the S3 notification travels through SQS to the ingest function, which records the ingestion
    items = wait_for(lambda: http("GET", f"{local.api}/v1/ingestions?source=e2e_drop", admin)[1].get("items", []),
                     lambda found: found and found[0].get("status") in ("completed", "failed"))
    assert [(i["file"], i["status"], i["rows_stored"]) for i in items] == [
        ("sources/e2e_drop/full/people.csv", "completed", 2)]
    # And the poller deletes the message once the function returned (a moment after the ingestion completed)
    attrs = wait_for(lambda: local.sqs.get_queue_attributes(
        QueueUrl=local.state["queues"]["IngestQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"],
        lambda counts: counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"})
    assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_schedule_can_be_fired_on_demand(local):
    # Given the template's hourly refresh schedule
    rule = local.state["schedules"][0]
    # When it is fired through the local endpoint
    admin = local.state["tokens"]["admin"]
    status, body = http("POST", f"{local.api}/_local/schedules/{rule}", admin)
    # Then the refresh function ran with a scheduled event and queued a refresh
    assert status == 200 and body["rule"] == rule
    refresh_id = body["result"]["id"]
    # And the jobs poller ran that refresh to the end: a full run, as the hourly reconciliation is
    status, refresh = wait_for(lambda: http("GET", f"{local.api}/v1/refreshes/{refresh_id}", admin),
                               lambda answer: answer[1].get("status") in ("completed", "failed"))
    assert status == 200
    assert (refresh["id"], refresh["trigger"], refresh["status"], refresh["mode"]) == (
        refresh_id, "schedule", "completed", "full")


def test_sigterm_stops_cleanly_and_removes_the_state_file(tmp_path):
    # Given a running stack of this test's own (so the module's stack, and the order of tests, do not matter)
    stack = RunningStack(tmp_path, "--no-demo")
    try:
        # When it receives SIGTERM
        os.killpg(stack.proc.pid, signal.SIGTERM)
        code = stack.proc.wait(15)
    finally:
        stack.stop()
    # Then it exits 0 and its state file is gone
    assert code == 0
    assert not stack.state_file.exists()


def test_busy_port_fails_fast_with_a_clear_message(tmp_path):
    # Given the API port is taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When local up is asked to use it
        result = subprocess.run([str(CLI), "local", "up", "--no-demo", "--api-port", str(port), "--aws-port",
                                 str(free_port()), "--state-file", str(tmp_path / "s.json")],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    # Then it exits with a message naming the port and the option to change it
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is busy" in result.stderr and "--api-port" in result.stderr
    assert not (tmp_path / "s.json").exists()
