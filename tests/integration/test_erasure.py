"""Erasure through statemachines/erasure.asl.json itself, executed by moto's Step Functions interpreter with the real
step handler: a person in two sources is erased everywhere (records, keys, index, profiles, state, rejection reports,
exports), others are untouched, the same file dropped again keeps the person out, a failed step resumes."""
import json
import sys
import threading
import time
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from profilevault.keys import vault
from profilevault.privacy import erasure, suppression
from profilevault.wiring import build_deps
from tests.helpers import REGION

# The person to erase carries canary values: none of them may be found anywhere afterwards.
CANARIES = ("zyx.canary", "ZYX.CANARY", "Zyxanna", "Qworthberg", "4930111111", "Canarystr")
CRM_FIELDS = {"mail": "email", "given": "first_name", "family": "last_name", "born": "birth_date", "tel": "phone",
              "street": "street"}
CRM = ("id,mail,given,family,born,tel,street\n"
       "c1,zyx.canary@example.org,Zyxanna,Qworthberg,1985-03-02,+4930111111,Canarystr. 5\n"
       "c2,jan.hoffmann@example.org,Jan,Hoffmann,1979-11-20,+4930222222,Hauptstr. 1\n"
       "c3,lea.vogt@example.org,Lea,Vogt,1990-07-14,,\n"
       ",zyx.canary@example.org,Zyxanna,Qworthberg,,,\n"  # rejected (no ID): a line of the person's in the report
       ",lea.vogt@example.org,Lea,Vogt,,,\n")  # someone else's rejected line: it stays
SHOP_FIELDS = {"email": "email", "first": "first_name", "last": "last_name", "dob": "birth_date"}
SHOP = "\n".join([
    '{"order": "s1", "email": "ZYX.CANARY@example.org", "first": "Zyxanna", "last": "Qworthberg"}',
    '{"order": "s2", "email": "jm@example.com", "first": "Jan", "last": "Hofmann", "dob": "20.11.1979"}',
    '{"order": "s3", "email": "tom@example.net", "first": "Tom", "last": "Klein"}',
]) + "\n"
VERIFICATION = {"method": "id-card", "reference": "desk-17"}
OFFICER = "privacy_officer"


def load(stack) -> None:
    stack.register("crm", CRM_FIELDS, importance=1)
    stack.ingest("crm", "customers.csv", CRM.encode())
    stack.register("shop", SHOP_FIELDS, fmt="jsonl", primary_key="order", importance=2)
    stack.ingest("shop", "orders.jsonl", SHOP.encode())


def submit(stack, request_type: str, subject: dict) -> str:
    """POST /v1/privacy-requests, then the privacy worker's turn (locate; an erasure starts its workflow)."""
    status, filed, _ = stack.api("POST", "/v1/privacy-requests", role=OFFICER,
                                 body={"type": request_type, "subject": subject, "verification": VERIFICATION})
    assert status == 202, filed
    work(stack)
    return filed["id"]


def work(stack) -> None:
    while messages := stack.queue_messages("RequestsQueue"):
        assert stack.deliver(messages, "RequestsQueue", "PrivacyWorkerFunction")["batchItemFailures"] == []


def executions(request_id: str) -> list[dict]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]
               if m["name"].endswith("-erasure"))
    return [e for e in sfn.list_executions(stateMachineArn=arn)["executions"] if e["name"].startswith(request_id)]


def settle(stack, request_id: str, timeout: float = 180) -> list[dict]:
    """Runs queued jobs (the recompute step's unification run reports back to the waiting execution) until every
    execution of the request has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.run_jobs()
        found = executions(request_id)
        if found and all(e["status"] != "RUNNING" for e in found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"the erasure of {request_id} did not end within {timeout} s")


def request(stack, request_id: str) -> dict:
    status, body, _ = stack.api("GET", f"/v1/privacy-requests/{request_id}", role=OFFICER)
    assert status == 200, body
    return body


def erase(stack, subject: dict) -> dict:
    request_id = submit(stack, "erasure", subject)
    settle(stack, request_id)
    return request(stack, request_id)


def profiles(stack) -> list[dict]:
    status, body, _ = stack.api("GET", "/v1/profiles", query={"limit": "500"})
    assert status == 200, body
    return body["items"]


def members(stack) -> set[frozenset]:
    return {frozenset((m["source"], m["record_id"]) for m in p["members"]) for p in profiles(stack)}


@pytest.fixture
def loaded(stack):
    load(stack)
    return stack


def test_an_erased_person_is_gone_from_records_profiles_and_search(loaded):
    # Given a person with a record in crm and one in shop, unified into one profile
    assert frozenset({("crm", "c1"), ("shop", "s1")}) in members(loaded)
    # When their erasure runs through the state machine
    done = erase(loaded, {"email": "Zyx.Canary@example.org"})
    # Then the request completed, and neither search nor the record lookup finds anything
    assert done["status"] == "completed", done
    assert (done["result"]["records"], done["result"]["profiles"]) == (2, 1)
    status, found, _ = loaded.api("POST", "/v1/profiles/search", body={"email": "zyx.canary@example.org"})
    assert (status, found["items"]) == (200, [])
    assert loaded.api("GET", "/v1/sources/crm/records/c1")[0] == 404
    assert loaded.api("GET", "/v1/sources/shop/records/s1")[0] == 404


def origin_notices(stack) -> callable:
    """Subscribes a queue to the erasure bus, as a source owner would; -> a function reading what arrived."""
    events, sqs = boto3.client("events", region_name=REGION), stack.sqs
    bus = stack.env["PV_ERASURE_EVENT_BUS"]
    url = sqs.create_queue(QueueName="origin-notices")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="erase-at-origin", EventBusName=bus,
                    EventPattern=json.dumps({"source": ["profilevault.erasure"]}))
    events.put_targets(Rule="erase-at-origin", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict]:
        out = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            out += [json.loads(m["Body"]) for m in batch]
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]}
                                                            for m in batch])
        return out
    return received


def test_nothing_of_the_person_is_left_at_rest_in_logs_or_in_the_execution_history(loaded, capfd):
    # Given the person's data is at rest (records, profile, rejected line, a sealed state) and in no log
    capfd.readouterr()
    # When they are erased
    request_id = submit(loaded, "erasure", {"email": "zyx.canary@example.org"})
    [execution] = settle(loaded, request_id)
    # Then no table, bucket or queue holds a canary value, nor any log line, nor the execution's history
    stored = loaded.stored_bytes()
    logs = capfd.readouterr()
    history = boto3.client("stepfunctions", region_name=REGION).get_execution_history(
        executionArn=execution["executionArn"], maxResults=1000)
    for canary in CANARIES:
        assert canary.encode() not in stored, canary
        assert canary not in logs.out + logs.err, canary
        assert canary not in json.dumps(history, default=str), canary
    assert execution["status"] == "SUCCEEDED"


def test_everyone_else_is_untouched(loaded):
    before = {p["id"]: p for p in profiles(loaded)}
    erase(loaded, {"email": "zyx.canary@example.org"})
    after = {p["id"]: p for p in profiles(loaded)}
    # The person's profile is gone; every other profile is still there, the same
    assert {pid for pid, p in before.items() if ("crm", "c1") in {(m["source"], m["record_id"])
                                                                   for m in p["members"]}} == set(before) - set(after)
    assert all(after[pid] == before[pid] for pid in after)
    assert members(loaded) == {frozenset({("crm", "c2"), ("shop", "s2")}), frozenset({("crm", "c3")}),
                               frozenset({("shop", "s3")})}
    for source, record_id in (("crm", "c2"), ("crm", "c3"), ("shop", "s2"), ("shop", "s3")):
        assert loaded.api("GET", f"/v1/sources/{source}/records/{record_id}")[0] == 200


def test_the_persons_lines_leave_the_rejection_report_and_others_stay(loaded):
    [ingestion] = [i for i in loaded.api("GET", "/v1/ingestions", query={"source": "crm"})[1]["items"]]
    assert ingestion["rows_rejected"] == 2
    done = erase(loaded, {"email": "zyx.canary@example.org"})
    status, report, _ = loaded.api("GET", f"/v1/ingestions/{ingestion['id']}/rejections")
    assert status == 200
    [kept] = report["items"]
    assert json.loads(kept["raw"])["mail"] == "lea.vogt@example.org"
    assert done["result"]["rejected_lines"] == 1
    assert loaded.api("GET", f"/v1/ingestions/{ingestion['id']}")[1]["rejections_erased"] == 1


def test_the_export_package_of_an_earlier_access_request_is_deleted(loaded):
    access = submit(loaded, "access", {"email": "zyx.canary@example.org"})
    assert request(loaded, access)["export"] is not None
    done = erase(loaded, {"phone": "+49 30 111111"})
    assert done["result"]["exports"] == 1
    assert loaded.api("GET", f"/v1/privacy-requests/{access}/export", role=OFFICER)[0] == 404
    assert "Contents" not in loaded.s3.list_objects_v2(Bucket=loaded.env["PV_EXPORTS_BUCKET"])


def test_each_source_is_told_the_record_ids_to_delete_at_the_origin(loaded):
    received = origin_notices(loaded)
    request_id = erase(loaded, {"email": "zyx.canary@example.org"})["id"]
    notices = sorted(received(), key=lambda e: e["detail"]["source"])
    assert [(n["source"], n["detail"]) for n in notices] == [
        ("profilevault.erasure", {"tenant": "default", "request_id": request_id, "source": "crm",
                                  "record_ids": ["c1"]}),
        ("profilevault.erasure", {"tenant": "default", "request_id": request_id, "source": "shop",
                                  "record_ids": ["s1"]})]


def test_the_same_file_dropped_again_keeps_the_person_out_and_lets_everyone_else_in(loaded):
    erase(loaded, {"email": "zyx.canary@example.org"})
    # When the organisation drops both files again, before deleting the person at the origin
    loaded.ingest("crm", "customers-again.csv", CRM.encode())
    loaded.ingest("shop", "orders-again.jsonl", SHOP.encode())
    # Then the person's rows are refused as suppressed (counted, not stored); everyone else's land as before
    newest = {s: loaded.api("GET", "/v1/ingestions", query={"source": s})[1]["items"][0] for s in ("crm", "shop")}
    assert [(i["rows_stored"], i["rows_suppressed"]) for i in newest.values()] == [(2, 1), (2, 1)]
    assert loaded.api("GET", "/v1/sources/crm/records/c1")[0] == 404
    assert loaded.api("GET", "/v1/sources/shop/records/s1")[0] == 404
    assert members(loaded) == {frozenset({("crm", "c2"), ("shop", "s2")}), frozenset({("crm", "c3")}),
                               frozenset({("shop", "s3")})}
    assert b"Qworthberg" not in loaded.stored_bytes()


# ------------------------------------------------------------------ the workflow: steps, audit, failures, resume

def workflow_steps(done: dict) -> list[str]:
    """The steps the erasure workflow recorded (after the worker's own: locate, start_erasure)."""
    names = [s["step"] for s in done["steps"]]
    return names[names.index("start_erasure") + 1:]


def erasure_module(stack):
    """The erasure step function as loaded (its clients, to inject a fault into one AWS call)."""
    return sys.modules[stack.handlers["ErasureStepFunction"].__module__]


def inject(client, event: str, error_code: str, times: int | None = None) -> list:
    """Makes one AWS operation of a client fail with `error_code` (every time, or the first `times` times)."""
    calls = []

    def fail(**_):
        calls.append(1)
        if times is None or len(calls) <= times:
            raise ClientError({"Error": {"Code": error_code, "Message": "injected"}}, event.rsplit(".", 1)[-1])
    client.meta.events.register(f"before-call.{event}", fail, unique_id=f"inject-{event}")
    return calls


def test_every_step_is_recorded_on_the_request_and_audited(loaded):
    done = erase(loaded, {"email": "zyx.canary@example.org"})
    assert workflow_steps(done) == ["suppress", "locate", "delete", "shred", "verify", "notify", "complete"]
    assert [h["status"] for h in done["history"]] == ["received", "locating", "in_progress", "completed"]
    status, audit, _ = loaded.api("GET", "/v1/audit", role="auditor", query={"request_id": done["id"]})
    assert status == 200
    by_workflow = [e for e in reversed(audit["items"]) if e["actor"] == "system:erasure"]
    assert [(e["action"], e["target"].get("step")) for e in by_workflow] == [
        ("privacy_request.step", step) for step in ("suppress", "locate", "delete", "shred", "verify", "notify")] + [
        ("privacy_request.completed", None), ("privacy_request.step", "complete")]


def test_a_failed_step_fails_the_request_there_and_retry_resumes_from_it(loaded):
    # Given S3 refusing the erasure's deletes (the old copy of a re-sealed rejection report)
    s3 = erasure_module(loaded).deps.s3
    inject(s3, "s3.DeleteObjects", "AccessDenied")
    request_id = submit(loaded, "erasure", {"email": "zyx.canary@example.org"})
    [first] = settle(loaded, request_id)
    # Then the state machine caught it: the request failed at delete, with the error's name, never data
    failed = request(loaded, request_id)
    assert (first["status"], failed["status"], failed["failed_step"]) == ("FAILED", "failed", "delete")
    assert failed["reason"] == "ClientError: AccessDenied"
    # When the fault is gone and the officer retries
    s3.meta.events.unregister("before-call.s3.DeleteObjects", unique_id="inject-s3.DeleteObjects")
    status, retried, _ = loaded.api("POST", f"/v1/privacy-requests/{request_id}/retry", role=OFFICER)
    assert (status, retried["status"]) == (200, "in_progress")
    second = [e for e in settle(loaded, request_id) if e["name"] != first["name"]]
    # Then a second execution began at delete (not at suppress) and completed the erasure
    done = request(loaded, request_id)
    assert [(e["name"], e["status"]) for e in second] == [(f"{request_id}-2", "SUCCEEDED")]
    assert first["name"] == f"{request_id}-1"
    assert done["status"] == "completed"
    assert workflow_steps(done) == ["suppress", "locate", "delete", "delete", "shred", "verify", "notify",
                                    "complete"]
    assert loaded.api("GET", "/v1/sources/crm/records/c1")[0] == 404
    assert [k for k in loaded.s3.list_objects_v2(Bucket=loaded.vault_bucket, Prefix="rejections/").get(
        "Contents", [])].__len__() == 1  # the interrupted re-seal's old copy is gone too


def test_a_transient_error_is_retried_by_the_state_machine(loaded):
    calls = inject(erasure_module(loaded).deps.origin_notices._events, "events.PutEvents", "ThrottlingException",
                   times=1)
    done = erase(loaded, {"email": "zyx.canary@example.org"})
    assert done["status"] == "completed"
    assert len(calls) == 2  # the throttled call, then the retry's
    assert [s["step"] for s in done["steps"]].count("notify") == 1


def write_back(stack, source: str, record_id: str, attributes: dict) -> None:
    """A writer that read the suppression list before the erasure wrote it, and writes now."""
    deps = build_deps()
    deps.records.put_sealed(source, [sealed_record(deps, source, record_id, attributes)])


def sealed_record(deps, source: str, record_id: str, attributes: dict):
    token = vault.record_token(deps.keyring, source, record_id)
    return vault.seal_record(deps.keyring, deps.records.address(source, token), token, record_id, attributes, [],
                             "ing_test", deps.now())


def test_verify_sends_the_erasure_back_to_delete_when_a_writer_raced_it(loaded, monkeypatch):
    # Given a writer that puts the person's record back once, just after the delete
    shred = erasure.shred_step
    raced = []

    def racing_shred(deps, request, work, event):
        if not raced:
            write_back(loaded, "crm", "c1", {"email": "zyx.canary@example.org", "first_name": "Zyxanna"})
            raced.append(1)
        return shred(deps, request, work, event)
    monkeypatch.setitem(erasure._STEPS, "shred", racing_shred)
    # When the person is erased
    done = erase(loaded, {"email": "zyx.canary@example.org"})
    # Then verify found the record, the erasure went back to delete, and it completed without it
    verdicts = [s["outcome"] for s in done["steps"] if s["step"] == "verify"]
    assert verdicts == ["found more: back to delete", "clean"]
    assert done["status"] == "completed"
    assert loaded.api("GET", "/v1/sources/crm/records/c1")[0] == 404
    assert b"Zyxanna" not in loaded.stored_bytes()


def test_a_writer_that_keeps_racing_fails_the_erasure_at_verify_after_three_passes(loaded, monkeypatch):
    shred = erasure.shred_step

    def racing_shred(deps, request, work, event):
        write_back(loaded, "crm", "c1", {"email": "zyx.canary@example.org"})
        return shred(deps, request, work, event)
    monkeypatch.setitem(erasure._STEPS, "shred", racing_shred)
    failed = erase(loaded, {"email": "zyx.canary@example.org"})
    assert (failed["status"], failed["failed_step"]) == ("failed", "verify")
    assert failed["reason"].startswith("ErasureIncomplete: after 3 passes still found: records")


def test_failed_drops_of_the_persons_sources_are_listed_with_the_day_the_lifecycle_removes_them(loaded):
    # Given a crm file that failed as a whole (no primary-key column) and so stays in landing
    key = loaded.drop("crm", "broken.csv", b"mail,given\nzyx.canary@example.org,Zyxanna\n")
    loaded.deliver()
    written = loaded.s3.head_object(Bucket=loaded.landing_bucket, Key=key)["LastModified"]
    done = erase(loaded, {"email": "zyx.canary@example.org"})
    [listed] = done["result"]["landing_files"]
    assert listed["file"] == key
    assert listed["expires_by"] == (written + timedelta(days=7)).isoformat(timespec="seconds")


# ------------------------------------------------------------------ suppression

def test_admins_list_suppressions_blind_with_the_request_and_nobody_else_may(loaded):
    done = erase(loaded, {"email": "zyx.canary@example.org"})
    status, listed, _ = loaded.api("GET", "/v1/suppressions")
    assert status == 200
    kinds = sorted(e["kind"] for e in listed["items"])
    assert kinds == ["email", "phone", "record", "record"]
    assert {e["request_id"] for e in listed["items"]} == {done["id"]}
    assert {e["source"] for e in listed["items"] if e["kind"] == "record"} == {"crm", "shop"}
    assert not any(canary in json.dumps(listed) for canary in CANARIES)
    for role in ("privacy_officer", "analyst", "auditor"):
        assert loaded.api("GET", "/v1/suppressions", role=role)[0] == 403


def test_suppressions_page_with_a_cursor(loaded):
    erase(loaded, {"email": "zyx.canary@example.org"})
    status, first, _ = loaded.api("GET", "/v1/suppressions", query={"limit": "3"})
    assert status == 200 and len(first["items"]) == 3 and first["next_cursor"]
    status, rest, _ = loaded.api("GET", "/v1/suppressions", query={"limit": "3", "cursor": first["next_cursor"]})
    assert status == 200 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert loaded.api("GET", "/v1/suppressions", query={"cursor": "not-a-cursor"})[0] == 422


def test_a_lifted_suppression_lets_that_row_in_again_and_is_audited(loaded):
    erase(loaded, {"email": "zyx.canary@example.org"})
    entries = loaded.api("GET", "/v1/suppressions")[1]["items"]
    # When the admin lifts every entry of the person's shop row (its record token and its e-mail)
    for entry in entries:
        if entry["kind"] in ("email", "record"):
            status, lifted, _ = loaded.api("DELETE", f"/v1/suppressions/{entry['id']}")
            assert (status, lifted["id"]) == (200, entry["id"])
    loaded.ingest("shop", "orders-again.jsonl", SHOP.encode())
    # Then the row is stored again, and each lift is in the audit trail
    assert loaded.api("GET", "/v1/sources/shop/records/s1")[0] == 200
    status, audit, _ = loaded.api("GET", "/v1/audit", role="auditor", query={"action": "suppression.lifted"})
    assert len(audit["items"]) == 3
    assert all(e["role"] == "admin" for e in audit["items"])


def test_lifting_an_unknown_suppression_is_a_404(loaded):
    assert loaded.api("DELETE", f"/v1/suppressions/sup_{'0' * 32}")[0] == 404
    assert loaded.api("DELETE", "/v1/suppressions/whatever")[0] == 404
    assert loaded.api("DELETE", f"/v1/suppressions/sup_{'0' * 32}", role="privacy_officer")[0] == 403


def test_a_batch_written_while_an_erasure_suppresses_is_deleted_again(stack):
    # Given a write batch that looked the suppression list up before an erasure wrote its entries
    stack.register("crm", CRM_FIELDS)
    deps = build_deps()
    batch = [sealed_record(deps, "crm", rid, {"email": email})
             for rid, email in (("c1", "zyx.canary@example.org"), ("c2", "jan.hoffmann@example.org"))]
    screened = suppression.screen(deps, "crm", batch)
    assert screened.suppressed == 0
    email_ref = batch[0].index_refs[0]
    suppression.suppress(deps, "pr_000000000000_000000000000", [f"{email_ref.attribute}#{email_ref.digest}"], [])
    # When the batch is written and then checked again
    deps.records.put_sealed("crm", screened.kept)
    assert suppression.recheck(deps, screened) == 1
    # Then the suppressed row is gone (keys and index entries with it) and the other row stays
    assert stack.api("GET", "/v1/sources/crm/records/c1")[0] == 404
    assert stack.api("GET", "/v1/sources/crm/records/c2")[0] == 200


# ------------------------------------------------------------------ races

def test_two_erasures_and_an_ingestion_of_the_same_person_at_once_end_consistent(loaded):
    # When two officers file an erasure of the same person while the crm file is dropped again
    filed, failures = [], []

    def run(action):
        try:
            action()
        except Exception as error:  # reported below: a thread's assertion must fail the test
            failures.append(error)

    threads = [threading.Thread(target=run, args=(lambda: filed.append(
        submit(loaded, "erasure", {"email": "zyx.canary@example.org"})),)),
        threading.Thread(target=run, args=(lambda: filed.append(
            submit(loaded, "erasure", {"phone": "+4930111111"})),)),
        threading.Thread(target=run, args=(lambda: loaded.ingest("crm", "customers-again.csv", CRM.encode()),))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for request_id in filed:
        settle(loaded, request_id)
    loaded.run_jobs()
    # Then both requests completed, nothing of the person is left, and nothing of anyone else is lost
    assert [request(loaded, r)["status"] for r in filed] == ["completed", "completed"]
    stored = loaded.stored_bytes()
    assert not [c for c in CANARIES if c.encode() in stored]
    assert members(loaded) == {frozenset({("crm", "c2"), ("shop", "s2")}), frozenset({("crm", "c3")}),
                               frozenset({("shop", "s3")})}
    for source, record_id in (("crm", "c2"), ("crm", "c3"), ("shop", "s2"), ("shop", "s3")):
        assert loaded.api("GET", f"/v1/sources/{source}/records/{record_id}")[0] == 200
