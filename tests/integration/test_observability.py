"""Business metrics (CloudWatch EMF on stdout, as Powertools prints them in Lambda) and traces, through the real
handlers: what a team would alarm on, with nothing personal in it."""
import json

import pytest

from profilevault import observability

CANARY = "canary.person@example.org"


def emitted(capsys) -> list[dict]:
    """Every EMF document printed so far (one JSON object a line with an `_aws` key)."""
    documents = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric(documents: list[dict], name: str) -> list[dict]:
    return [d for d in documents
            if any(m["Name"] == name for c in d["_aws"]["CloudWatchMetrics"] for m in c["Metrics"])]


@pytest.fixture
def crm(stack):
    stack.register("crm", {"mail": "email"})
    return stack


def test_an_ingested_file_reports_its_row_counts(crm, capsys):
    # Given a file with two good rows and one without its key
    crm.drop("crm", "people.csv", f"id,mail\n1,{CANARY}\n2,two@example.org\n,nokey@example.org\n".encode())
    # When it is ingested
    crm.deliver()
    # Then one EMF document counts the file and its rows, under the outcome only
    [document] = metric(emitted(capsys), observability.FILES_INGESTED)
    assert (document["FilesIngested"], document["RowsStored"], document["RowsRejected"], document["RowsSuppressed"],
            document["ValueWarnings"]) == ([1.0], [2.0], [1.0], [0.0], [0.0])
    assert document["Outcome"] == "completed"
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "Outcome"]]
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ProfileVault"


def test_metrics_name_no_source_file_or_person(crm, capsys):
    # Given an ingested file and the unification run it queued
    crm.ingest("crm", "people.csv", f"id,mail\n1,{CANARY}\n".encode())
    # When every EMF document printed is read
    documents = emitted(capsys)
    # Then none names the source, the file, a record or a person
    assert metric(documents, observability.FILES_INGESTED) and metric(documents, observability.UNIFICATION_RUNS)
    text = json.dumps(documents)
    for needle in ("crm", "people.csv", CANARY, "ing_", "run_"):
        assert needle not in text


def test_a_file_that_fails_is_counted_as_failed(crm, capsys):
    # Given a file without the primary-key column; When it is ingested
    crm.drop("crm", "bad.csv", b"key,mail\n1,a@example.org\n")
    crm.deliver()
    # Then it is counted under Outcome failed, with no rows
    [document] = metric(emitted(capsys), observability.FILES_INGESTED)
    assert (document["Outcome"], document["RowsStored"]) == ("failed", [0.0])


def test_a_unification_run_reports_its_mode_and_duration(crm, capsys):
    # Given an ingested file; When the run it queued completes
    crm.ingest("crm", "people.csv", b"id,mail\n1,one@example.org\n2,two@example.org\n")
    # Then the run is counted with its mode, duration and records read
    [document] = metric(emitted(capsys), observability.UNIFICATION_RUNS)
    assert (document["Mode"], document["RecordsRead"], document["ProfilesWritten"]) == ("full", [2.0], [2.0])
    units = {m["Name"]: m["Unit"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["UnificationRunDuration"] == "Milliseconds" and document["UnificationRunDuration"][0] >= 0


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_an_unavailable_key_is_counted_where_it_stops_an_ingestion(crm, capsys):
    # Given the tenant's KMS key is disabled
    crm.kms.disable_key(KeyId=crm.tenant_key_arn)
    # When a file arrives
    crm.drop("crm", "people.csv", b"id,mail\n1,one@example.org\n")
    crm.deliver()
    # Then KeyUnavailable is counted for the ingestion flow (and the file waits for a retry, uncounted)
    documents = emitted(capsys)
    assert [d["Flow"] for d in metric(documents, observability.KEY_UNAVAILABLE)] == ["ingestion"]
    assert metric(documents, observability.FILES_INGESTED) == []


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_an_unavailable_key_is_counted_where_it_refuses_a_request(crm, capsys):
    # Given the tenant's KMS key is disabled; When a request needs it
    crm.kms.disable_key(KeyId=crm.tenant_key_arn)
    status = crm.api("POST", "/v1/profiles/search", body={"email": "one@example.org"})[0]
    # Then the 503 is counted for the API
    assert status == 503
    assert [d["Flow"] for d in metric(emitted(capsys), observability.KEY_UNAVAILABLE)] == ["api"]


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_a_job_that_fails_for_good_is_counted_once(crm, capsys):
    # Given a queued run whose tenant key is disabled
    crm.ingest("crm", "people.csv", b"id,mail\n1,one@example.org\n")
    crm.kms.disable_key(KeyId=crm.tenant_key_arn)
    crm.api("POST", "/v1/unification/runs")
    [message] = crm.queue_messages("JobsQueue", max_messages=1)
    emitted(capsys)
    # When it fails on each of its three tries
    for receive in (1, 2, 3):
        attempt = {**message, "Attributes": {**message["Attributes"], "ApproximateReceiveCount": str(receive)}}
        crm.deliver([attempt], "JobsQueue", "RefreshFunction")
    # Then every try counts a KeyUnavailable, and the job counts as failed once, by its type
    documents = emitted(capsys)
    assert [d["Flow"] for d in metric(documents, observability.KEY_UNAVAILABLE)] == ["job"] * 3
    assert [d["JobType"] for d in metric(documents, observability.JOBS_FAILED)] == ["unify"]


class RecordingProvider:
    """Stands in for the X-Ray recorder: keeps each subsegment's name and what was put on it."""

    def __init__(self):
        self.subsegments: list[str] = []
        self.metadata: list[tuple[str, str]] = []

    def in_subsegment(self, name: str):
        provider = self

        class Subsegment:
            def __enter__(self):
                provider.subsegments.append(name)
                return self

            def __exit__(self, *exc):
                return False

            def put_metadata(self, key, value, namespace="default"):
                provider.metadata.append((key, repr(value)))

            def put_annotation(self, key, value):
                pass

        return Subsegment()


@pytest.fixture
def traces(monkeypatch) -> RecordingProvider:
    provider = RecordingProvider()
    monkeypatch.setattr(observability.tracer, "provider", provider)
    return provider


def test_traced_logic_records_neither_what_it_returns_nor_what_it_raises(traces, monkeypatch):
    # Given an environment asking Powertools to capture responses and errors (its defaults)
    monkeypatch.setenv("POWERTOOLS_TRACER_CAPTURE_RESPONSE", "true")
    monkeypatch.setenv("POWERTOOLS_TRACER_CAPTURE_ERROR", "true")

    @observability.capture_method
    def opens_a_record() -> dict:
        return {"email": CANARY}

    @observability.capture_method
    def refuses() -> None:
        raise ValueError(CANARY)

    # When functions traced the way the logic is are called
    opens_a_record()
    with pytest.raises(ValueError):
        refuses()
    # Then each has its subsegment, and neither the response nor the error is put on it
    assert [name.rsplit(".", 1)[-1] for name in traces.subsegments] == ["opens_a_record", "refuses"]
    assert traces.metadata == []


@pytest.mark.handler_env(POWERTOOLS_TRACER_CAPTURE_RESPONSE="true", POWERTOOLS_TRACER_CAPTURE_ERROR="true")
def test_traces_cover_the_flows_and_never_record_responses_or_errors(crm, traces):
    # Given handlers loaded where the environment would capture responses and errors
    # When a file is ingested and unified, a profile is searched for and a missing one asked for
    crm.ingest("crm", "people.csv", f"id,mail\n1,{CANARY}\n".encode())
    assert crm.api("POST", "/v1/profiles/search", body={"email": CANARY})[0] == 200
    assert crm.api("GET", "/v1/profiles/missing")[0] == 404
    # Then the handlers and the logic's entry points have subsegments, and nothing returned or raised was recorded
    names = {name.removeprefix("## ").rsplit(".", 1)[-1] for name in traces.subsegments}
    assert {"lambda_handler", "ingest_landing_object", "run_unification", "search_profiles", "get_profile"} <= names
    assert traces.metadata == []


class CollectingEmitter:
    """Stands in for the X-Ray daemon: keeps every segment and subsegment the SDK would send, as JSON."""

    def __init__(self):
        self.documents: list[str] = []

    def send_entity(self, entity) -> None:
        self.documents.append(entity.serialize())

    def set_daemon_address(self, address) -> None:
        pass

    def entities(self) -> list[dict]:
        """Every segment and subsegment sent, nested ones included."""
        found, pending = [], [json.loads(d) for d in self.documents]
        while pending:
            entity = pending.pop()
            found.append(entity)
            pending.extend(entity.get("subsegments", []))
        return found


@pytest.fixture
def xray(monkeypatch) -> CollectingEmitter:
    """The X-Ray SDK recording for real, with botocore instrumented as Powertools' Tracer instruments it in Lambda
    (patch_all); what it would send is collected. Everything is undone afterwards."""
    import botocore.client
    import botocore.endpoint
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import patch, xray_recorder

    # Recorded so that monkeypatch puts the uninstrumented methods back.
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", botocore.client.BaseClient._make_api_call)
    monkeypatch.setattr(botocore.endpoint.Endpoint, "prepare_request", botocore.endpoint.Endpoint.prepare_request)
    emitter = CollectingEmitter()
    monkeypatch.setattr(xray_recorder, "_emitter", emitter)
    monkeypatch.setattr(xray_recorder, "_sampling", False)
    was_enabled = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    patch(["botocore"])
    xray_recorder.begin_segment("profilevault-test", sampling=1)
    yield emitter
    if xray_recorder.current_segment() is not None:
        xray_recorder.end_segment()
    global_sdk_config.set_sdk_enabled(was_enabled)
    del botocore.client._xray_enabled


def test_traces_of_an_ingestion_do_not_carry_the_file_name(crm, xray):
    from aws_xray_sdk.core import xray_recorder

    # Given a file whose name an uploader chose after a person
    crm.drop("crm", "anna-schmidt-1985.csv", b"id,mail\n1,one@example.org\n")
    # When it is ingested with X-Ray recording every AWS call (S3 reads and deletes of that very object among them)
    assert crm.deliver()["batchItemFailures"] == []
    xray_recorder.end_segment()
    # Then the traces hold the S3 calls, but not the object key, nor any part of the file name
    s3_calls = [e["aws"] for e in xray.entities() if e.get("namespace") == "aws" and e["name"] == "s3"]
    assert {"GetObject", "DeleteObject"} <= {call["operation"] for call in s3_calls}
    assert "anna-schmidt" not in "\n".join(xray.documents)
