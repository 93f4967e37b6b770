"""Privacy requests through the real API and privacy worker handlers, on moto built from template.yaml: filing,
locating, access and portability packages, review, the status rules, listing, bad input."""
import csv
import io
import json
import sys
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import lambda_context, sample_event

OFFICER = "privacy_officer"
VERIFIED = {"method": "id card", "reference": "checked at the front desk"}
CRM = {"mail": "email", "given": "first_name", "family": "last_name", "cust": "customer_id", "note": "custom.note"}
SHOP = {"mail": "email", "given": "first_name", "tel": "phone"}


@pytest.fixture
def people(stack):
    """Erin is in crm and shop (one profile); Otto is in crm only; Nina is in shop only, with her own e-mail."""
    stack.register("crm", CRM, importance=1, description="Customer relationship management",
                   purposes=["contract performance", "customer service"], retention="6 years after the last order")
    stack.register("shop", SHOP, importance=2)
    stack.ingest("crm", "people.csv", b"id,mail,given,family,cust,note\n"
                                      b"c1,Erin.Example@example.org,Erin,Example,K-100,=HYPERLINK(\"x\")\n"
                                      b"c2,otto.other@example.org,Otto,Other,K-200,\n")
    stack.ingest("shop", "orders.csv", b"id,mail,given,tel\n"
                                       b"s1,erin.example@example.org,Erin,+49 30 1234567\n"
                                       b"s2,nina.nobody@example.org,Nina,+49 40 7654321\n")
    assert stack.run_jobs() == 0
    return stack


def file(stack, type_: str, subject: dict, headers: dict | None = None, **extra) -> tuple[int, dict]:
    status, body, _ = stack.api("POST", "/v1/privacy-requests", role=OFFICER, headers=headers,
                                body={"type": type_, "subject": subject, "verification": VERIFIED, **extra})
    return status, body


def work(stack, last_try: bool = False) -> int:
    """Delivers every queued privacy request to the worker like the SQS mapping does (`last_try`: as its third)."""
    done = 0
    while messages := stack.queue_messages("RequestsQueue"):
        for m in messages:
            m["Attributes"]["ApproximateReceiveCount"] = "3" if last_try else "1"
        stack.deliver(messages, "RequestsQueue", "PrivacyWorkerFunction")
        done += len(messages)
    return done


def get(stack, request_id: str, role: str = OFFICER) -> dict:
    status, body, _ = stack.api("GET", f"/v1/privacy-requests/{request_id}", role=role)
    assert status == 200, body
    return body


def fulfilled(stack, type_: str, subject: dict) -> dict:
    status, filed = file(stack, type_, subject)
    assert status == 202, filed
    work(stack)
    return get(stack, filed["id"])


def download(stack, request_id: str) -> zipfile.ZipFile:
    status, _, headers = stack.api("GET", f"/v1/privacy-requests/{request_id}/export", role=OFFICER)
    assert status == 303
    url = urlsplit(headers["Location"])
    bucket, key = url.path.lstrip("/").split("/", 1) if url.netloc.startswith("s3.") else (
        url.netloc.split(".")[0], url.path.lstrip("/"))
    body = stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return zipfile.ZipFile(io.BytesIO(body))


# ------------------------------------------------------------------ filing

def test_a_request_is_accepted_with_its_legal_due_date(stack):
    status, filed = file(stack, "access", {"email": "erin.example@example.org"})
    assert status == 202
    assert set(filed) == {"id", "type", "status", "received_at", "due_at"}
    assert (filed["type"], filed["status"]) == ("access", "received")
    assert filed["due_at"][:10] > filed["received_at"][:10]


def test_the_subject_is_sealed_and_the_queue_carries_the_request_id_only(stack):
    status, filed = file(stack, "access", {"email": "Canary.Person@example.org", "phone": "+49 30 9999999"},
                         note="called on 12 May")
    assert status == 202
    message, = stack.queue_messages("RequestsQueue")
    assert json.loads(message["Body"]) == {"request_id": filed["id"]}
    stored = stack.stored_bytes().lower()
    assert b"canary.person" not in stored and b"9999999" not in stored and b"front desk" not in stored
    assert b"12 may" not in stored


# ------------------------------------------------------------------ access and portability

def test_access_package_holds_the_subjects_records_from_both_sources_and_no_one_elses(people):
    request = fulfilled(people, "access", {"email": "ERIN.example@example.org "})
    assert request["status"] == "completed", request
    assert [h["status"] for h in request["history"]] == ["received", "locating", "in_progress", "completed"]
    assert [s["step"] for s in request["steps"]] == ["locate", "package"]
    assert request["result"] == {"outcome": "package ready", "profiles": 1, "records": 2}
    archive = download(people, request["id"])
    assert archive.namelist() == ["package.json"]
    package = json.loads(archive.read("package.json"))
    assert sorted((r["source"], r["record_id"]) for r in package["records"]) == [("crm", "c1"), ("shop", "s1")]
    assert {r["values"]["first_name"] for r in package["records"]} == {"Erin"}
    assert len(package["profiles"]) == 1 and package["profiles"][0]["attributes"]["first_name"] == "Erin"
    assert all(r["ingested_at"] for r in package["records"])
    assert b"Otto" not in archive.read("package.json") and b"Nina" not in archive.read("package.json")


def test_access_package_says_what_each_source_declares_and_lists_the_subjects_requests(people):
    earlier = fulfilled(people, "access", {"customer_id": "K-100"})
    request = fulfilled(people, "access", {"email": "erin.example@example.org"})
    package = json.loads(download(people, request["id"]).read("package.json"))
    crm, shop = package["sources"]
    assert crm == {"name": "crm", "records": 1, "description": "Customer relationship management",
                   "purposes": ["contract performance", "customer service"],
                   "retention": "6 years after the last order"}
    assert shop == {"name": "shop", "records": 1}
    assert [r["id"] for r in package["requests"]] == [earlier["id"], request["id"]]


def test_portability_package_has_a_csv_per_source_with_formulas_neutralised(people):
    request = fulfilled(people, "portability", {"phone": "030 1234567"})
    archive = download(people, request["id"])
    assert archive.namelist() == ["package.json", "crm.csv", "shop.csv"]
    crm = list(csv.DictReader(io.StringIO(archive.read("crm.csv").decode())))
    shop = list(csv.DictReader(io.StringIO(archive.read("shop.csv").decode())))
    assert [(r["record_id"], r["email"], r["custom.note"]) for r in crm] == [
        ("c1", "erin.example@example.org", "'=HYPERLINK(\"x\")")]
    assert [(r["record_id"], r["phone"]) for r in shop] == [("s1", "'+49301234567")]


def test_a_subject_held_nowhere_completes_with_no_data_held(people):
    request = fulfilled(people, "access", {"email": "stranger@example.org", "source_record": {
        "source": "crm", "record_id": "c9"}})
    assert request["status"] == "completed"
    assert request["result"] == {"outcome": "no data held"}
    assert request["steps"][0]["outcome"] == "no data held"
    assert request["export"] is None


def test_a_source_record_names_the_subject(people):
    request = fulfilled(people, "access", {"source_record": {"source": "shop", "record_id": "s1"}})
    package = json.loads(download(people, request["id"]).read("package.json"))
    assert sorted(r["record_id"] for r in package["records"]) == ["c1", "s1"]


def test_identifiers_of_two_profiles_stop_for_review_and_confirming_one_hands_over_only_its_data(people):
    status, filed = file(people, "access", {"email": "erin.example@example.org", "customer_id": "K-200"})
    work(people)
    waiting = get(people, filed["id"])
    assert waiting["status"] == "needs_review"
    assert len(waiting["candidate_profile_ids"]) == 2
    erin = people.api("POST", "/v1/profiles/search", body={"email": "erin.example@example.org"})[1]["items"][0]
    status, confirmed, _ = people.api("POST", f"/v1/privacy-requests/{filed['id']}/confirm", role=OFFICER,
                                      body={"profile_ids": [erin["id"]]})
    assert (status, confirmed["status"], confirmed["profile_ids"]) == (200, "in_progress", [erin["id"]])
    work(people)
    package = json.loads(download(people, filed["id"]).read("package.json"))
    assert sorted(r["record_id"] for r in package["records"]) == ["c1", "s1"]


def test_confirming_a_profile_that_is_not_a_candidate_is_refused(people):
    status, filed = file(people, "access", {"email": "erin.example@example.org", "customer_id": "K-200"})
    work(people)
    status, problem, _ = people.api("POST", f"/v1/privacy-requests/{filed['id']}/confirm", role=OFFICER,
                                    body={"profile_ids": ["someone-else"]})
    assert status == 422 and "not candidate" in problem["detail"]
    assert get(people, filed["id"])["status"] == "needs_review"


def test_the_export_link_is_presigned_for_at_most_15_minutes(people):
    request = fulfilled(people, "access", {"email": "erin.example@example.org"})
    status, _, headers = people.api("GET", f"/v1/privacy-requests/{request['id']}/export", role=OFFICER)
    assert status == 303
    query = parse_qs(urlsplit(headers["Location"]).query)
    assert query["X-Amz-Expires"] == ["900"]
    assert f"{request['id']}.zip" in urlsplit(headers["Location"]).path


def test_a_request_without_a_package_has_no_export(people):
    status, filed = file(people, "access", {"email": "erin.example@example.org"})
    status, problem, _ = people.api("GET", f"/v1/privacy-requests/{filed['id']}/export", role=OFFICER)
    assert status == 409 and "no package" in problem["detail"]


def test_every_status_move_step_and_download_is_audited_without_personal_data(people):
    request = fulfilled(people, "access", {"email": "erin.example@example.org"})
    download(people, request["id"])
    status, audit, _ = people.api("GET", "/v1/audit", role="auditor", query={"request_id": request["id"]})
    entries = audit["items"][::-1]
    assert status == 200
    assert [e["action"] for e in entries] == [
        "privacy_request.received", "privacy_request.locating", "privacy_request.step", "privacy_request.in_progress",
        "privacy_request.step", "privacy_request.completed", "privacy_request.export_downloaded"]
    assert [e["role"] for e in entries] == ["privacy_officer"] + ["system"] * 5 + ["privacy_officer"]
    assert entries[2]["counts"] == {"profiles": 1, "records": 2}
    assert b"erin" not in json.dumps(audit).lower().encode()


def test_no_data_held_is_audited_so_the_answer_can_be_proven(people):
    request = fulfilled(people, "access", {"email": "stranger@example.org"})
    audit = people.api("GET", "/v1/audit", role="auditor", query={"request_id": request["id"]})[1]["items"]
    completed, = [e for e in audit if e["action"] == "privacy_request.completed"]
    assert completed["target"] == {"request_id": request["id"], "from": "locating", "outcome": "no-data-held"}


# ------------------------------------------------------------------ idempotency

def test_a_retried_post_with_the_same_idempotency_key_returns_the_first_request(stack):
    first = file(stack, "access", {"email": "erin.example@example.org"}, headers={"Idempotency-Key": "k-1"})
    again = file(stack, "access", {"email": "erin.example@example.org"}, headers={"Idempotency-Key": "k-1"})
    assert first == again and first[0] == 202
    listed = stack.api("GET", "/v1/privacy-requests", role=OFFICER)[1]["items"]
    assert [r["id"] for r in listed] == [first[1]["id"]]


def test_an_idempotency_key_reused_for_another_request_is_refused(stack):
    file(stack, "access", {"email": "erin.example@example.org"}, headers={"Idempotency-Key": "k-2"})
    status, problem = file(stack, "erasure", {"email": "erin.example@example.org"},
                           headers={"Idempotency-Key": "k-2"})
    assert status == 422 and "Idempotency-Key" in problem["detail"]
    assert len(stack.api("GET", "/v1/privacy-requests", role=OFFICER)[1]["items"]) == 1


# ------------------------------------------------------------------ status rules

def test_a_request_can_be_cancelled_before_it_is_in_progress_and_not_after(people):
    _, waiting = file(people, "access", {"email": "erin.example@example.org"})
    status, cancelled, _ = people.api("POST", f"/v1/privacy-requests/{waiting['id']}/cancel", role=OFFICER)
    assert (status, cancelled["status"]) == (200, "cancelled")
    work(people)
    assert get(people, waiting["id"])["status"] == "cancelled"
    done = fulfilled(people, "access", {"email": "erin.example@example.org"})
    status, problem, _ = people.api("POST", f"/v1/privacy-requests/{done['id']}/cancel", role=OFFICER)
    assert status == 409 and "completed" in problem["detail"]


def test_the_due_date_is_extended_once_by_up_to_two_months_from_receipt(stack):
    _, filed = file(stack, "access", {"email": "erin.example@example.org"})
    status, extended, _ = stack.api("POST", f"/v1/privacy-requests/{filed['id']}/extend", role=OFFICER,
                                    body={"reason": "complexity", "months": 2})
    assert status == 200
    received = filed["received_at"]
    month = int(received[5:7]) + 2
    assert extended["due_at"][5:7] == f"{(month % 12) + 1:02d}"
    assert extended["extension"]["months"] == 2
    again = stack.api("POST", f"/v1/privacy-requests/{filed['id']}/extend", role=OFFICER,
                      body={"reason": "complexity", "months": 1})
    assert again[0] == 409 and "only once" in again[1]["detail"]


@pytest.mark.parametrize("body", [{"reason": "complexity", "months": 3}, {"reason": "because", "months": 1}, {}])
def test_an_extension_beyond_two_months_or_without_a_ground_is_refused(stack, body):
    _, filed = file(stack, "access", {"email": "erin.example@example.org"})
    status, _, _ = stack.api("POST", f"/v1/privacy-requests/{filed['id']}/extend", role=OFFICER, body=body)
    assert status == 422
    assert get(stack, filed["id"])["extension"] is None


def test_only_a_failed_request_is_retried(people):
    done = fulfilled(people, "access", {"email": "erin.example@example.org"})
    status, problem, _ = people.api("POST", f"/v1/privacy-requests/{done['id']}/retry", role=OFFICER)
    assert status == 409 and "only a failed request" in problem["detail"]


def test_a_request_whose_package_keeps_failing_is_failed_at_that_step_and_a_retry_resumes_it(people, monkeypatch):
    from profilevault.privacy import fulfil

    real = fulfil.build_package
    monkeypatch.setattr(fulfil, "build_package", lambda *a: (_ for _ in ()).throw(TimeoutError("S3 is slow")))
    _, filed = file(people, "portability", {"email": "erin.example@example.org"})
    work(people, last_try=True)
    failed = get(people, filed["id"])
    assert (failed["status"], failed["failed_step"], failed["reason"]) == (
        "failed", "package", "TimeoutError after 3 tries")
    monkeypatch.setattr(fulfil, "build_package", real)
    status, resumed, _ = people.api("POST", f"/v1/privacy-requests/{filed['id']}/retry", role=OFFICER)
    assert (status, resumed["status"]) == (200, "in_progress")
    work(people)
    done = get(people, filed["id"])
    assert done["status"] == "completed"
    assert [s["step"] for s in done["steps"]] == ["locate", "package"]  # locating was not done again
    assert [h["status"] for h in done["history"]] == ["received", "locating", "in_progress", "failed",
                                                      "in_progress", "completed"]


# ------------------------------------------------------------------ reading and listing

def test_an_admin_reads_requests_and_an_analyst_may_not(stack):
    _, filed = file(stack, "access", {"email": "erin.example@example.org"})
    assert get(stack, filed["id"], role="admin")["id"] == filed["id"]
    status, _, _ = stack.api("GET", f"/v1/privacy-requests/{filed['id']}", role="analyst")
    assert status == 403


def test_the_list_shows_ids_types_statuses_and_dates_newest_first_and_pages(stack):
    ids = [file(stack, t, {"email": f"p{n}@example.org"})[1]["id"]
           for n, t in enumerate(["access", "erasure", "access", "portability", "access"])]
    first = stack.api("GET", "/v1/privacy-requests", role=OFFICER, query={"limit": "2"})[1]
    second = stack.api("GET", "/v1/privacy-requests", role=OFFICER,
                       query={"limit": "2", "cursor": first["next_cursor"]})[1]
    third = stack.api("GET", "/v1/privacy-requests", role=OFFICER,
                      query={"limit": "2", "cursor": second["next_cursor"]})[1]
    assert [r["id"] for r in first["items"] + second["items"] + third["items"]] == ids[::-1]
    assert third["next_cursor"] is None
    assert set(first["items"][0]) == {"id", "type", "status", "received_at", "due_at", "overdue"}


def test_the_list_filters_by_type_and_status(stack):
    access = file(stack, "access", {"email": "a@example.org"})[1]["id"]
    erasure = file(stack, "erasure", {"email": "b@example.org"})[1]["id"]
    stack.api("POST", f"/v1/privacy-requests/{access}/cancel", role=OFFICER)
    by_type = stack.api("GET", "/v1/privacy-requests", role=OFFICER, query={"type": "erasure"})[1]["items"]
    by_status = stack.api("GET", "/v1/privacy-requests", role=OFFICER, query={"status": "cancelled"})[1]["items"]
    assert [r["id"] for r in by_type] == [erasure]
    assert [r["id"] for r in by_status] == [access]


def test_overdue_requests_are_flagged_and_filtered(stack, monkeypatch):
    open_one = file(stack, "access", {"email": "a@example.org"})[1]["id"]
    cancelled = file(stack, "access", {"email": "b@example.org"})[1]["id"]
    stack.api("POST", f"/v1/privacy-requests/{cancelled}/cancel", role=OFFICER)
    api_deps = sys.modules[stack.handlers["PrivacyApiFunction"].__module__].deps
    monkeypatch.setattr(api_deps, "now", lambda: "2999-01-01T00:00:00.000+00:00")
    overdue = stack.api("GET", "/v1/privacy-requests", role=OFFICER, query={"overdue": "true"})[1]["items"]
    assert [(r["id"], r["overdue"]) for r in overdue] == [(open_one, True)]
    assert get(stack, open_one)["overdue"] is True


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize(("body", "needle"), [
    ({"type": "rectification", "subject": {"email": "a@example.org"}, "verification": VERIFIED}, "type"),
    ({"type": "access", "subject": {}, "verification": VERIFIED}, "at least one"),
    ({"type": "access", "subject": {"email": "not-an-address"}, "verification": VERIFIED}, "email"),
    ({"type": "access", "subject": {"phone": "12"}, "verification": VERIFIED}, "phone"),
    ({"type": "access", "subject": {"email": "  "}, "verification": VERIFIED}, "email"),
    ({"type": "access", "subject": {"profile_id": "a/b"}, "verification": VERIFIED}, "profile_id"),
    ({"type": "access", "subject": {"source_record": {"source": "Bad Name", "record_id": "1"}},
      "verification": VERIFIED}, "source name"),
    ({"type": "access", "subject": {"nickname": "x"}, "verification": VERIFIED}, "nickname"),
    ({"type": "access", "subject": {"email": "a@example.org"}}, "verification"),
    ({"type": "access", "subject": {"email": "a@example.org"}, "verification": {"method": "id card"}},
     "reference"),
])
def test_a_bad_request_is_a_422_problem_that_does_not_echo_the_input(stack, body, needle):
    status, problem, _ = stack.api("POST", "/v1/privacy-requests", role=OFFICER, body=body)
    assert status == 422, problem
    assert needle in json.dumps(problem)
    assert "not-an-address" not in json.dumps(problem)
    assert stack.queue_messages("RequestsQueue") == []


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("GET", "", None), ("POST", "/cancel", None), ("POST", "/retry", None), ("GET", "/export", None),
    ("POST", "/extend", {"reason": "complexity"}), ("POST", "/confirm", {"profile_ids": ["p"]}),
])
@pytest.mark.parametrize("request_id", ["pr_0000000000aa_000000000000", "nonsense"])
def test_an_unknown_request_is_a_404_problem(stack, method, suffix, body, request_id):
    status, problem, _ = stack.api(method, f"/v1/privacy-requests/{request_id}{suffix}", role=OFFICER, body=body)
    assert status == 404 and problem["status"] == 404


def test_confirming_a_request_that_is_not_waiting_for_review_is_a_409(people):
    done = fulfilled(people, "access", {"email": "erin.example@example.org"})
    status, problem, _ = people.api("POST", f"/v1/privacy-requests/{done['id']}/confirm", role=OFFICER,
                                    body={"profile_ids": done["profile_ids"]})
    assert status == 409 and "needs_review" in problem["detail"]


@pytest.mark.parametrize("query", [{"cursor": "bm9wZQ"}, {"status": "lost"}, {"type": "x"}, {"limit": "0"}])
def test_bad_list_parameters_are_a_422_problem(stack, query):
    status, problem, _ = stack.api("GET", "/v1/privacy-requests", role=OFFICER, query=query)
    assert status == 422 and problem["status"] == 422


def test_the_worker_drops_a_message_for_a_request_it_does_not_hold(stack):
    result = stack.handlers["PrivacyWorkerFunction"](sample_event("privacy_request_queued.json"),
                                                    lambda_context("PrivacyWorkerFunction"))
    assert result == {"batchItemFailures": []}
