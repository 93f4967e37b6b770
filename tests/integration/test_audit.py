"""The audit trail through the real handlers: what is audited, verification (edits, deletions, reordering, a
consistent rewrite caught by the write-once anchors), concurrent appends, actor pseudonyms, roles, and no personal
data in any entry."""
import json
import threading

import pytest

from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.wiring import build_deps
from tests.helpers import api_event, lambda_context, sample_event

CANARY_EMAIL = "canary.audit.7f3a@example.org"
CANARY_NAME = "Zebulonia"
CANARY_ID = "cust-canary-91827"


# ------------------------------------------------------------------ helpers

def audit_table(stack) -> str:
    return stack.deployed.tables["AuditTable"]


def anchor_bucket(stack) -> str:
    return stack.deployed.buckets["AuditAnchorBucket"]


def entry_key(stack, seq: int) -> dict:
    return {"pk": {"S": f"TENANT#{stack.env['PV_TENANT_ID']}#AUDIT"}, "sk": {"S": f"E#{seq:012d}"}}


def stored_entry(stack, seq: int) -> dict:
    return stack.dynamodb.get_item(TableName=audit_table(stack), Key=entry_key(stack, seq))["Item"]


def verify(stack, role: str = "auditor") -> dict:
    status, body, _ = stack.api("GET", "/v1/audit/verify", role=role)
    assert status == 200, body
    return body


def entries(stack, role: str = "auditor", **query) -> list[dict]:
    status, body, _ = stack.api("GET", "/v1/audit", role=role, query={"limit": "500", **query})
    assert status == 200, body
    return body["items"]


def register_sources(stack, count: int) -> None:
    """`count` audited actions: one source registration each."""
    for n in range(count):
        stack.register(f"src{n}", {"mail": "email"})


def call_as(stack, sub: str, role: str, method: str, path: str, body=None) -> tuple[int, dict]:
    event = api_event(method, path, role, body)
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    response = stack.handlers["PrivacyApiFunction"](event, lambda_context("PrivacyApiFunction"))
    return response["statusCode"], json.loads(response.get("body") or "null")


def fire_anchor_schedule(stack) -> dict:
    return stack.handlers["RefreshFunction"](sample_event("audit_anchor_schedule.json"),
                                             lambda_context("RefreshFunction"))


def anchor_keys(stack) -> list[str]:
    listed = stack.s3.list_objects_v2(Bucket=anchor_bucket(stack), Prefix="anchors/")
    return [o["Key"] for o in listed.get("Contents", [])]


# ------------------------------------------------------------------ what is audited

def test_state_changes_and_reads_of_personal_data_are_audited_with_surrogate_ids(stack):
    # Given a source, a file, a rule set, a run and a refresh
    stack.register("crm", {"id": "customer_id", "mail": "email"})
    stack.ingest("crm", "c.csv", f"id,mail\n{CANARY_ID},{CANARY_EMAIL}\n".encode())
    rules = stack.api("GET", "/v1/unification/rules")[1]
    stack.api("PUT", "/v1/unification/rules", body=rules)
    stack.api("POST", "/v1/unification/runs")
    stack.api("POST", "/v1/refreshes")
    stack.run_jobs()
    # When staff read the person's data in every way there is, and the source is removed
    [profile] = stack.api("POST", "/v1/profiles/search", body={"email": CANARY_EMAIL})[1]["items"]
    stack.api("GET", f"/v1/profiles/{profile['id']}")
    stack.api("GET", f"/v1/profiles/{profile['id']}/explain", role="privacy_officer")
    stack.api("GET", "/v1/profiles", role="analyst")
    stack.api("GET", f"/v1/sources/crm/records/{CANARY_ID}")
    stack.api("DELETE", "/v1/sources/crm")
    stack.run_jobs()
    # Then each is one entry, newest first, naming surrogate IDs and counts only
    listed = entries(stack)
    actions = [e["action"] for e in reversed(listed)]
    assert actions == ["source.registered", "ingestion.completed", "unification.completed", "ruleset.changed",
                       "unification.queued", "refresh.queued", "unification.completed", "refresh.completed",
                       "profile.searched", "profile.read", "profile.explained", "profile.listed", "record.read",
                       "source.removed", "source.purged"]
    by_action = {e["action"]: e for e in listed}
    assert by_action["profile.searched"]["target"] == {"attribute": "email"}
    assert by_action["profile.searched"]["counts"] == {"results": 1}
    assert by_action["profile.read"]["target"] == {"profile_id": profile["id"]}
    assert by_action["profile.listed"]["role"] == "analyst"
    assert by_action["record.read"]["target"]["source"] == "crm"
    assert by_action["ingestion.completed"]["counts"]["rows_stored"] == 1
    assert by_action["ingestion.completed"]["actor"] == "system:ingest"
    assert by_action["source.purged"]["counts"]["records_deleted"] == 1
    assert [e["seq"] for e in listed] == list(range(len(listed), 0, -1))


def test_a_tenant_key_change_is_audited_once(stack):
    other = stack.kms.create_key()["KeyMetadata"]["Arn"]
    for _ in range(2):  # the second switch to the same key changes nothing
        assert stack.api("PUT", "/v1/tenant/key", body={"kms_key_arn": other})[0] == 200
    [change] = entries(stack, action="tenant_key.changed")
    assert change["target"] == {"kms_key_arn": other}
    assert change["counts"] == {"keyring_version": 2}


def test_the_hourly_refresh_is_audited_as_the_schedule(stack):
    stack.handlers["RefreshFunction"](sample_event("refresh_schedule.json"), lambda_context("RefreshFunction"))
    [queued] = entries(stack, action="refresh.queued")
    assert (queued["actor"], queued["role"]) == ("system:schedule", "system")


def test_no_personal_data_reaches_the_audit_trail(stack):
    # Given a person whose values are canaries, searched for and read by staff in every way there is
    stack.register("crm", {"id": "customer_id", "mail": "email", "given": "first_name", "tel": "phone"})
    stack.ingest("crm", "c.csv", f"id,mail,given,tel\n{CANARY_ID},{CANARY_EMAIL},{CANARY_NAME},+4915112345678\n"
                 .encode())
    for field, value in (("email", CANARY_EMAIL), ("customer_id", CANARY_ID), ("phone", "+49 151 12345678")):
        stack.api("POST", "/v1/profiles/search", body={field: value})
    stack.api("POST", "/v1/profiles/search", body={"email": "nobody." + CANARY_EMAIL})
    stack.api("GET", f"/v1/sources/crm/records/{CANARY_ID}")
    stack.api("GET", "/v1/sources/crm/records/not-" + CANARY_ID)
    fire_anchor_schedule(stack)
    # When everything in the audit table and the anchor bucket is read
    dump = repr([p["Items"] for p in stack.dynamodb.get_paginator("scan").paginate(TableName=audit_table(stack))])
    dump += repr([stack.s3.get_object(Bucket=anchor_bucket(stack), Key=k)["Body"].read() for k in anchor_keys(stack)])
    # Then none of the values (nor a staff sub) is there, in any spelling
    assert len(entries(stack, action="profile.searched")) == 4
    for value in (CANARY_EMAIL, CANARY_ID, CANARY_NAME, "12345678", "canary", "test-admin"):
        assert value.lower() not in dump.lower()


# ------------------------------------------------------------------ verification

def test_a_chain_of_actions_verifies(stack):
    register_sources(stack, 4)
    report = verify(stack)
    assert (report["valid"], report["entries"], report["first_broken"]) == (True, 4, None)
    assert report["head"]["seq"] == 4
    assert report["head"]["hash"] == entries(stack)[0]["hash"]


def test_an_empty_chain_verifies(stack):
    assert verify(stack) == {"valid": True, "entries": 0, "head": None, "anchors": {"count": 0, "latest": None},
                             "first_broken": None}


def test_an_entry_edited_in_the_table_breaks_the_chain_there(stack):
    register_sources(stack, 5)
    stack.dynamodb.update_item(TableName=audit_table(stack), Key=entry_key(stack, 3),
                               UpdateExpression="SET #t.#s = :other", ExpressionAttributeNames={"#t": "target",
                                                                                                 "#s": "source"},
                               ExpressionAttributeValues={":other": {"S": "innocent"}})
    report = verify(stack)
    assert report["valid"] is False
    assert report["first_broken"]["seq"] == 3
    assert report["first_broken"]["reason"].startswith("altered")


def test_an_entry_edited_with_its_hash_recomputed_breaks_the_next_link(stack):
    register_sources(stack, 5)
    deps = build_deps()
    forged = {**deps.audit.get_entry(3), "action": "source.updated"}
    forged["hash"] = trail.entry_hash(forged)
    stack.dynamodb.update_item(TableName=audit_table(stack), Key=entry_key(stack, 3),
                               UpdateExpression="SET #a = :a, #h = :h",
                               ExpressionAttributeNames={"#a": "action", "#h": "hash"},
                               ExpressionAttributeValues={":a": {"S": "source.updated"}, ":h": {"S": forged["hash"]}})
    assert verify(stack)["first_broken"] == {"seq": 4, "reason": "does not follow its predecessor (prev_hash differs)"}


def test_a_deleted_entry_breaks_the_chain_at_its_seq(stack):
    register_sources(stack, 5)
    stack.dynamodb.delete_item(TableName=audit_table(stack), Key=entry_key(stack, 2))
    report = verify(stack)
    assert (report["valid"], report["entries"]) == (False, 4)
    assert report["first_broken"]["seq"] == 2
    assert report["first_broken"]["reason"].startswith("missing")


def test_the_last_entry_deleted_is_caught_by_the_head(stack):
    register_sources(stack, 3)
    stack.dynamodb.delete_item(TableName=audit_table(stack), Key=entry_key(stack, 3))
    assert verify(stack)["first_broken"] == {"seq": 3, "reason": "missing: the chain head names seq 3"}


def test_two_swapped_entries_break_the_chain_at_the_first(stack):
    register_sources(stack, 5)
    second, third = stored_entry(stack, 2), stored_entry(stack, 3)
    stack.dynamodb.put_item(TableName=audit_table(stack), Item={**third, **entry_key(stack, 2)})
    stack.dynamodb.put_item(TableName=audit_table(stack), Item={**second, **entry_key(stack, 3)})
    report = verify(stack)
    assert report["valid"] is False
    assert report["first_broken"]["seq"] == 2
    assert report["first_broken"]["reason"].startswith("out of place")


def test_appends_after_a_broken_entry_do_not_mend_it(stack):
    register_sources(stack, 3)
    stack.dynamodb.delete_item(TableName=audit_table(stack), Key=entry_key(stack, 2))
    register_sources(stack, 2)
    report = verify(stack)
    assert (report["valid"], report["first_broken"]["seq"], report["head"]["seq"]) == (False, 2, 5)


# ------------------------------------------------------------------ anchors

def test_the_anchor_schedule_sends_the_sample_event(stack):
    [schedule] = [s for s in stack.deployed.schedules if s.logical_id == "RefreshFunctionAuditAnchor"]
    assert schedule.input == sample_event("audit_anchor_schedule.json")
    assert schedule.expression == "rate(1 hour)"


def test_the_schedule_anchors_the_head_in_a_write_once_object(stack):
    register_sources(stack, 3)
    head = entries(stack)[0]
    # When the hourly schedule fires (twice, with nothing appended in between)
    written = fire_anchor_schedule(stack)
    again = fire_anchor_schedule(stack)
    # Then one anchor holds the head, under retention, and the second firing wrote nothing
    key = f"anchors/{3:012d}-{head['hash']}.json"
    assert (written["written"], again["written"]) == (True, False)
    assert anchor_keys(stack) == [key]
    stored = stack.s3.get_object(Bucket=anchor_bucket(stack), Key=key)
    assert {k: v for k, v in json.loads(stored["Body"].read()).items() if k != "at"} == {"seq": 3,
                                                                                         "hash": head["hash"]}
    assert stored["ObjectLockMode"] == "COMPLIANCE"
    assert verify(stack)["anchors"] == {"count": 1, "latest": {"seq": 3, "hash": head["hash"]}}


def test_an_anchor_cannot_be_deleted(stack):
    register_sources(stack, 1)
    fire_anchor_schedule(stack)
    [key] = anchor_keys(stack)
    version = stack.s3.head_object(Bucket=anchor_bucket(stack), Key=key)["VersionId"]
    with pytest.raises(stack.s3.exceptions.ClientError, match="AccessDenied"):
        stack.s3.delete_object(Bucket=anchor_bucket(stack), Key=key, VersionId=version)


def test_a_chain_rewritten_consistently_after_an_anchor_fails_verification(stack):
    # Given an anchored chain, and more entries after the anchor
    register_sources(stack, 4)
    fire_anchor_schedule(stack)
    register_sources(stack, 2)
    # When someone with write access to the table rewrites entry 2 and every hash after it, head included
    deps = build_deps()
    chain = list(deps.audit.entries())
    previous_hash = chain[0]["hash"]
    for entry in chain[1:]:
        entry = {**entry, "prev_hash": previous_hash}
        if entry["seq"] == 2:
            entry["target"] = {"source": "nothing-to-see"}
        entry["hash"] = previous_hash = trail.entry_hash(entry)
        stack.dynamodb.put_item(TableName=audit_table(stack), Item={**stored_entry(stack, entry["seq"]), **{
            "target": {"M": {k: {"S": v} for k, v in entry["target"].items()}}, "prev_hash": {"S": entry["prev_hash"]},
            "hash": {"S": entry["hash"]}}})
    stack.dynamodb.update_item(TableName=audit_table(stack), Key={**entry_key(stack, 0), "sk": {"S": "HEAD"}},
                               UpdateExpression="SET #h = :h", ExpressionAttributeNames={"#h": "hash"},
                               ExpressionAttributeValues={":h": {"S": previous_hash}})
    # Then the chain is consistent in itself, but no longer matches the anchor at seq 4
    assert verify(stack)["first_broken"] == {"seq": 4, "reason": "differs from the anchored hash"}


def test_appends_after_an_anchor_keep_the_chain_valid(stack):
    register_sources(stack, 2)
    fire_anchor_schedule(stack)
    register_sources(stack, 1)
    fire_anchor_schedule(stack)
    report = verify(stack)
    assert (report["valid"], report["entries"], report["anchors"]["count"]) == (True, 3, 2)


# ------------------------------------------------------------------ concurrency

def test_concurrent_appends_make_one_gapless_chain(stack):
    deps = build_deps()
    appended: list[dict] = []
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for n in range(8):
                appended.append(trail.record(deps, "unification.completed", Actor.system(f"worker-{worker}"),
                                             {"run_id": f"run_{worker}_{n}"}))
        except BaseException as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [repr(e) for e in errors] == []
    chain = list(deps.audit.entries())
    assert [e["seq"] for e in chain] == list(range(1, 49))
    assert sorted(e["target"]["run_id"] for e in chain) == sorted(e["target"]["run_id"] for e in appended)
    assert verify(stack)["valid"] is True


# ------------------------------------------------------------------ actors

def test_one_staff_identity_has_one_pseudonym_and_others_another(stack):
    call_as(stack, "alice-sub", "admin", "PUT", "/v1/sources/a", {"format": "csv", "primary_key": "id",
                                                                   "fields": {"m": "email"}})
    call_as(stack, "alice-sub", "admin", "PUT", "/v1/sources/b", {"format": "csv", "primary_key": "id",
                                                                   "fields": {"m": "email"}})
    call_as(stack, "bob-sub", "admin", "PUT", "/v1/sources/c", {"format": "csv", "primary_key": "id",
                                                                 "fields": {"m": "email"}})
    third, second, first = entries(stack)
    assert first["actor"] == second["actor"] != third["actor"]
    assert first["actor"].startswith("stf_") and "alice" not in first["actor"]


def test_erasing_a_pseudonym_mapping_keeps_the_chain_valid(stack):
    spec = {"format": "csv", "primary_key": "id", "fields": {"m": "email"}}
    call_as(stack, "alice-sub", "admin", "PUT", "/v1/sources/a", spec)
    before = entries(stack)[0]["actor"]
    assert trail.forget_actor(build_deps(), "alice-sub") is True
    call_as(stack, "alice-sub", "admin", "PUT", "/v1/sources/b", spec)
    after = entries(stack)[0]["actor"]
    assert after != before  # nothing links the old entries to the person any more
    assert verify(stack)["valid"] is True


def test_a_token_without_a_subject_cannot_act(stack):
    status, problem = call_as(stack, "", "admin", "PUT", "/v1/sources/a", {"format": "csv", "primary_key": "id",
                                                                            "fields": {"m": "email"}})
    assert status == 403 and "sub" in problem["detail"]


# ------------------------------------------------------------------ reading and roles

@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/verify"])
@pytest.mark.parametrize(("role", "expected"), [("auditor", 200), ("admin", 200), ("analyst", 403),
                                                ("privacy_officer", 403)])
def test_only_auditors_and_admins_read_the_audit_trail(stack, path, role, expected):
    assert stack.api("GET", path, role=role)[0] == expected


def test_the_trail_pages_newest_first(stack):
    register_sources(stack, 5)
    status, first, _ = stack.api("GET", "/v1/audit", role="auditor", query={"limit": "2"})
    second = stack.api("GET", "/v1/audit", role="auditor", query={"limit": "2", "cursor": first["next_cursor"]})[1]
    third = stack.api("GET", "/v1/audit", role="auditor", query={"limit": "2", "cursor": second["next_cursor"]})[1]
    assert [e["seq"] for page in (first, second, third) for e in page["items"]] == [5, 4, 3, 2, 1]
    assert third["next_cursor"] is None


def test_the_trail_filters_by_action_request_and_time(stack):
    deps = build_deps()
    officer = Actor(sub="officer-1", role="privacy_officer")
    for hour, action, actor, request_id in ((10, "privacy_request.received", officer, "req_a"),
                                            (11, "privacy_request.received", officer, "req_b"),
                                            (12, "privacy_request.completed", Actor.system("erasure-workflow"),
                                             "req_a")):
        deps.now = lambda hour=hour: f"2026-03-01T{hour}:00:00.000+00:00"
        trail.record(deps, action, actor, {"request_id": request_id})
    assert [e["action"] for e in entries(stack, request_id="req_a")] == ["privacy_request.completed",
                                                                         "privacy_request.received"]
    assert [e["target"]["request_id"] for e in entries(stack, action="privacy_request.received")] == ["req_b",
                                                                                                       "req_a"]
    assert [e["seq"] for e in entries(stack, **{"from": "2026-03-01T11:00:00Z"})] == [3, 2]
    assert [e["seq"] for e in entries(stack, to="2026-03-01T12:00:00+01:00")] == [1]
    assert [e["seq"] for e in entries(stack, **{"from": "2026-03-01", "to": "2026-03-02"})] == [3, 2, 1]
    assert entries(stack, **{"from": "2026-03-02"}) == []


@pytest.mark.parametrize("query", [{"cursor": "bm90LWEtc2Vx"}, {"from": "yesterday"}, {"action": "DROP TABLE"},
                                   {"request_id": "a b"}, {"limit": "0"}])
def test_bad_audit_queries_are_4xx_problems(stack, query):
    status, problem, _ = stack.api("GET", "/v1/audit", role="auditor", query=query)
    assert 400 <= status < 500 and problem["status"] == status
