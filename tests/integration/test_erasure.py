"""Erasure through statemachines/erasure.asl.json itself, executed by moto's Step Functions interpreter with the real
step handler: a person in two sources is erased everywhere (records, keys, index, profiles, state, rejection reports,
exports), others are untouched, the same file dropped again keeps the person out, a failed step resumes."""
import json
import time

import boto3
import pytest
from conftest import REGION

from profilevault.privacy import requests
from profilevault.privacy.requests import NewPrivacyRequest
from profilevault.wiring import build_deps

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


def load(stack) -> None:
    stack.register("crm", CRM_FIELDS, importance=1)
    stack.ingest("crm", "customers.csv", CRM.encode())
    stack.register("shop", SHOP_FIELDS, fmt="jsonl", primary_key="order", importance=2)
    stack.ingest("shop", "orders.jsonl", SHOP.encode())


def submit(stack, request_type: str, subject: dict) -> str:
    """A privacy request as the API stores it, then the worker's turn (locate; an erasure starts its workflow)."""
    request = requests.create_request(build_deps(), NewPrivacyRequest.model_validate(
        {"type": request_type, "subject": subject, "verification": VERIFICATION}))
    while messages := stack.queue_messages("RequestsQueue"):
        assert stack.deliver(messages, "RequestsQueue", "PrivacyWorkerFunction")["batchItemFailures"] == []
    return request.id


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
    return requests.get_request(build_deps(), request_id).model_dump()


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
    export = request(loaded, access)["export"]
    assert export is not None
    erase(loaded, {"phone": "+49 30 111111"})
    with pytest.raises(loaded.s3.exceptions.ClientError):
        loaded.s3.head_object(Bucket=loaded.env["PV_EXPORTS_BUCKET"], Key=export["key"])


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
