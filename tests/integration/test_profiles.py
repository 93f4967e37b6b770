"""Unification through the real handlers: records from two sources become profiles, stored sealed, readable per
role, explainable, searchable through blind indexes, undone when a source is removed."""
import json

import pytest

from profilevault.errors import Conflict
from profilevault.profiles import state as unification_state
from profilevault.storage.changes import ChangeJournal
from profilevault.storage.dynamo import Tables
from profilevault.storage.records import RecordRepository
from profilevault.storage.runs import RunRepository
from tests.helpers import lambda_context, sample_event

CRM = "id,mail,given,family,born,tel\n" + "".join([
    "c1,anna.berg@example.org,Anna,Berg,1985-03-02,+4930111111\n",
    "c2,jan.hoffmann@example.org,Jan,Hoffmann,1979-11-20,+4930222222\n",
    "c3,lea.vogt@example.org,Lea,Vogt,1990-07-14,\n",
])
SHOP = "\n".join([
    '{"order": "s1", "email": "ANNA.BERG@example.org", "first": "Anna", "last": "Berg"}',
    '{"order": "s2", "email": "jm@example.com", "first": "Jan", "last": "Hofmann", "dob": "20.11.1979"}',
    '{"order": "s3", "email": "tom@example.net", "first": "Tom", "last": "Klein"}',
]) + "\n"


def load(stack, shop=True):
    stack.register("crm", {"mail": "email", "given": "first_name", "family": "last_name", "born": "birth_date",
                           "tel": "phone"}, importance=1)
    stack.ingest("crm", "customers.csv", CRM.encode())
    if shop:
        stack.register("shop", {"email": "email", "first": "first_name", "last": "last_name", "dob": "birth_date"},
                       fmt="jsonl", primary_key="order", importance=2)
        stack.ingest("shop", "orders.jsonl", SHOP.encode())


def profiles(stack, role="admin"):
    status, body, _ = stack.api("GET", "/v1/profiles", role=role, query={"limit": "500"})
    assert status == 200, body
    return body["items"]


def by_members(items):
    return {frozenset((m["source"], m["record_id"]) for m in p["members"]): p for p in items}


@pytest.fixture
def unified(stack):
    load(stack)
    return stack


def test_records_of_the_same_person_across_sources_become_one_profile(unified):
    groups = set(by_members(profiles(unified)))
    assert groups == {frozenset({("crm", "c1"), ("shop", "s1")}),  # same email
                      frozenset({("crm", "c2"), ("shop", "s2")}),  # fuzzy name + birth date
                      frozenset({("crm", "c3")}), frozenset({("shop", "s3")})}


def test_merged_attributes_follow_source_importance(unified):
    jan = by_members(profiles(unified))[frozenset({("crm", "c2"), ("shop", "s2")})]
    assert jan["attributes"]["last_name"] == "Hoffmann"  # crm (importance 1) wins over shop's "Hofmann"
    assert jan["attributes"]["phone"] == "+4930222222"


def test_explain_names_the_rule_and_the_scores(unified):
    jan = by_members(profiles(unified))[frozenset({("crm", "c2"), ("shop", "s2")})]
    status, explained, _ = unified.api("GET", f"/v1/profiles/{jan['id']}/explain")
    assert status == 200
    [link] = explained["links"]
    assert link["rule"] and link["conditions"]
    assert all(0 < c["score"] <= 1 for c in link["conditions"])
    assert {c["attribute"] for c in link["conditions"]} >= {"birth_date"}


def test_explain_hides_record_ids_from_analysts_and_everything_from_auditors(unified):
    jan = by_members(profiles(unified))[frozenset({("crm", "c2"), ("shop", "s2")})]
    status, explained, _ = unified.api("GET", f"/v1/profiles/{jan['id']}/explain", role="analyst")
    assert status == 200
    assert {end["record_id"] for link in explained["links"] for end in (link["a"], link["b"])} == {"c***", "s***"}
    assert unified.api("GET", f"/v1/profiles/{jan['id']}/explain", role="auditor")[0] == 403


def test_profile_ids_are_stable_across_runs(unified):
    before = {p["id"] for p in profiles(unified)}
    status, run, _ = unified.api("POST", "/v1/unification/runs")
    assert status == 202 and run["status"] == "queued"
    unified.run_jobs()
    status, run, _ = unified.api("GET", f"/v1/unification/runs/{run['id']}", role="auditor")
    assert status == 200 and run["status"] == "completed"
    assert run["counts"]["unchanged"] == run["counts"]["profiles"] == 4
    assert run["counts"]["profiles_written"] == 0
    assert {p["id"] for p in profiles(unified)} == before


def test_previous_ids_say_where_a_merged_profile_came_from_and_survive_later_runs(stack):
    # Given profiles built by a rule set that cannot join crm c1 with shop s1
    stack.api("PUT", "/v1/unification/rules", body={
        "rules": [{"name": "same-phone", "conditions": [{"attribute": "phone", "precision": "exact"}]}]})
    load(stack)
    before = by_members(profiles(stack))
    c1, s1 = before[frozenset({("crm", "c1")})]["id"], before[frozenset({("shop", "s1")})]["id"]
    # When the rules start matching e-mail, and a later run changes nothing
    stack.api("PUT", "/v1/unification/rules", body={
        "rules": [{"name": "same-email", "conditions": [{"attribute": "email", "precision": "exact"}]}]})
    for _ in range(2):
        stack.api("POST", "/v1/unification/runs")
        stack.run_jobs()
    # Then the merged profile keeps one of the two IDs and names the other, run after run
    merged = by_members(profiles(stack))[frozenset({("crm", "c1"), ("shop", "s1")})]
    assert {merged["id"], *merged["previous_ids"]} == {c1, s1}


def test_removing_a_source_splits_its_profiles_and_a_re_add_rebuilds_them(unified):
    anna = by_members(profiles(unified))[frozenset({("crm", "c1"), ("shop", "s1")})]
    status, _, _ = unified.api("DELETE", "/v1/sources/shop")
    assert status == 202
    unified.run_jobs()
    after = by_members(profiles(unified))
    assert set(after) == {frozenset({("crm", c)}) for c in ("c1", "c2", "c3")}
    assert after[frozenset({("crm", "c1")})]["id"] == anna["id"]  # the id stays where it can
    assert unified.dynamodb.scan(TableName=unified.deployed.tables["RecordsTable"])["Count"] == 3
    assert last_run(unified)["mode"] == "incremental"
    assert full_run(unified)["counts"]["profiles_written"] == 0  # the incremental purge left what a full run would
    load(unified)
    assert by_members(profiles(unified))[frozenset({("crm", "c1"), ("shop", "s1")})]["id"] == anna["id"]
    assert full_run(unified)["counts"]["profiles_written"] == 0


def test_analysts_see_masked_profiles_and_auditors_none(unified):
    masked = profiles(unified, role="analyst")
    anna = next(p for p in masked if p["attributes"].get("email", "").startswith("a"))
    assert anna["attributes"]["email"] == "a***@example.org"
    assert "Anna" not in str(anna) and "Berg" not in str(anna)
    assert unified.api("GET", "/v1/profiles", role="auditor")[0] == 403
    full = by_members(profiles(unified, role="privacy_officer"))
    assert full[frozenset({("crm", "c1"), ("shop", "s1")})]["attributes"]["first_name"] == "Anna"


def test_search_by_identifier_goes_through_the_blind_index(unified):
    status, found, _ = unified.api("POST", "/v1/profiles/search", body={"email": " Anna.Berg@Example.org "})
    assert status == 200
    [anna] = found["items"]
    assert {m["record_id"] for m in anna["members"]} == {"c1", "s1"}
    assert unified.api("POST", "/v1/profiles/search", body={"phone": "030 222222"})[1]["items"][0]["attributes"][
        "first_name"] == "Jan"
    assert unified.api("POST", "/v1/profiles/search", body={"email": "nobody@example.org"})[1]["items"] == []
    assert unified.api("POST", "/v1/profiles/search", body={"email": "a@example.org", "phone": "+4930111111"})[0] == 422
    status, problem, _ = unified.api("POST", "/v1/profiles/search", body={"email": "not-an-email"})
    assert status == 422 and "not-an-email" not in problem["detail"]


def test_paging_through_profiles_with_a_cursor(unified):
    seen, cursor = [], None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        status, page, _ = unified.api("GET", "/v1/profiles", query=query)
        assert status == 200
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 4
    assert unified.api("GET", "/v1/profiles", query={"cursor": "%%%"})[0] == 422


def test_a_never_match_exception_keeps_two_records_apart(stack):
    status, body, _ = stack.api("PUT", "/v1/unification/rules", body={
        "rules": [{"name": "same-email", "conditions": [{"attribute": "email", "precision": "exact"}]}],
        "exceptions": [{"never_match": [{"source": "crm", "record_id": "c1"}, {"source": "shop", "record_id": "s1"}]}],
        "merge": {"default": "importance"}})
    assert status == 200, body
    load(stack)
    assert not any(len(k) > 1 for k in by_members(profiles(stack)))
    assert stack.api("GET", "/v1/unification/rules")[1]["exceptions"][0]["never_match"][0]["record_id"] == "c1"


@pytest.mark.parametrize("rules", [
    {"rules": []},
    {"rules": [{"name": "x", "conditions": [{"attribute": "shoe_size", "precision": "exact"}]}]},
    {"rules": [{"name": "x", "conditions": [{"attribute": "email", "precision": 1.5}]}]},
    {"rules": [{"name": "x", "conditions": [{"attribute": "email", "precision": "exact", "normalize": ["rot13"]}]}]},
    {"rules": [{"name": "x", "conditions": [{"attribute": "email", "precision": "exact"}]}],
     "merge": {"default": "loudest"}},
])
def test_malformed_rule_documents_are_refused(stack, rules):
    status, problem, _ = stack.api("PUT", "/v1/unification/rules", body=rules)
    assert status == 422, problem
    assert stack.api("GET", "/v1/unification/rules")[1]["rules"][0]["name"] == "same-email"  # the default stays


def test_profiles_hold_no_plaintext(unified):
    at_rest = unified.stored_bytes()
    for value in (b"anna.berg@example.org", b"Anna", b"Hoffmann", b"1979-11-20", b"+4930222222", b"jm@example.com"):
        assert value not in at_rest


def test_a_full_snapshot_replaces_the_previous_one_on_refresh(stack):
    load(stack, shop=False)
    # (two of the three rows: a snapshot under MinSnapshotShare of the previous one would be held)
    stack.ingest("crm", "v2.csv",
                 b"id,mail,given,family\nc1,anna.new@example.org,Anna,Berg\nc3,lea@example.org,Lea,Vogt\n")
    status, refresh, _ = stack.api("POST", "/v1/refreshes")
    assert status == 202
    stack.run_jobs()
    assert stack.api("GET", f"/v1/refreshes/{refresh['id']}")[1]["status"] == "completed"
    assert stack.api("GET", "/v1/sources/crm")[1]["record_count"] == 2
    assert stack.api("GET", "/v1/sources/crm/records/c2")[0] == 404
    assert set(by_members(profiles(stack))) == {frozenset({("crm", "c1")}), frozenset({("crm", "c3")})}
    assert full_run(stack)["counts"]["profiles_written"] == 0


def test_the_hourly_schedule_refreshes_profiles(stack):
    load(stack, shop=False)
    stack.ingest("crm", "v2.csv", b"id,mail\nc1,anna.berg@example.org\nc3,lea.vogt@example.org\n")
    # When EventBridge fires the schedule (the sample event from events/)
    queued = stack.handlers["RefreshFunction"](sample_event("refresh_schedule.json"), lambda_context("RefreshFunction"))
    stack.run_jobs()
    # Then the snapshot is applied and the profiles follow it
    run = stack.api("GET", f"/v1/refreshes/{queued['id']}")[1]
    assert run["status"] == "completed" and run["counts"]["records_deleted"] == 1
    assert run["mode"] == "full"  # the hourly reconciliation reads everything again
    assert set(by_members(profiles(stack))) == {frozenset({("crm", "c1")}), frozenset({("crm", "c3")})}


def jobs_queue_tries(stack) -> int:
    """How often the jobs queue delivers a job before its DLQ takes it (its redrive policy, from the template)."""
    attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.deployed.queues["JobsQueue"],
                                                AttributeNames=["RedrivePolicy"])["Attributes"]
    return int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])


def delivered_for_the(receive: int, message: dict) -> dict:
    return {**message, "Attributes": {**message["Attributes"], "ApproximateReceiveCount": str(receive)}}


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_a_run_that_keeps_failing_says_so_before_its_job_goes_to_the_dead_letter_queue(stack):
    load(stack, shop=False)
    run = stack.api("POST", "/v1/unification/runs")[1]  # audited: naming the actor needs the key
    stack.kms.disable_key(KeyId=stack.tenant_key_arn)
    tries = jobs_queue_tries(stack)
    for receive in range(1, tries + 1):
        [message] = stack.queue_messages("JobsQueue", max_messages=1)
        assert message["Attributes"]["ApproximateReceiveCount"] == str(receive)
        assert stack.deliver([message], "JobsQueue", "RefreshFunction")["batchItemFailures"]
        status = stack.api("GET", f"/v1/unification/runs/{run['id']}")[1]["status"]
        assert status == ("failed" if receive == tries else "running")
        stack.make_visible([message], "JobsQueue")  # the visibility timeout passes: SQS offers it again
    assert "KeyUnavailable" in stack.api("GET", f"/v1/unification/runs/{run['id']}")[1]["reason"]
    # The queue's redrive policy moves it to the dead-letter queue instead of another try
    assert stack.queue_messages("JobsQueue") == []
    [dead] = stack.queue_messages("JobsDeadLetterQueue")
    assert run["id"] in dead["Body"]


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_a_failed_run_stays_failed_when_its_job_is_delivered_again(stack):
    # Given a run marked failed after its last try
    load(stack, shop=False)
    run = stack.api("POST", "/v1/unification/runs")[1]  # audited: naming the actor needs the key
    stack.kms.disable_key(KeyId=stack.tenant_key_arn)
    [message] = stack.queue_messages("JobsQueue", max_messages=1)
    stack.deliver([delivered_for_the(jobs_queue_tries(stack), message)], "JobsQueue", "RefreshFunction")
    failed = stack.api("GET", f"/v1/unification/runs/{run['id']}")[1]
    # When the key is back and the job is redriven from the dead-letter queue
    stack.kms.enable_key(KeyId=stack.tenant_key_arn)
    assert stack.deliver([delivered_for_the(1, message)], "JobsQueue", "RefreshFunction")["batchItemFailures"] == []
    # Then the run still says it failed, and why
    assert stack.api("GET", f"/v1/unification/runs/{run['id']}")[1] == failed


def test_a_completed_run_cannot_be_set_running_again(unified):
    # Given a completed run
    run = full_run(unified)
    runs = RunRepository(unified.dynamodb, tables_of(unified), unified.env["PV_TENANT_ID"])
    # When a late worker that read it before it completed tries to start it
    late = runs.get(run["id"]).model_copy(update={"status": "running", "started_at": "later"})
    with pytest.raises(Conflict):
        runs.save(late)
    # Then it stays completed
    assert unified.api("GET", f"/v1/unification/runs/{run['id']}")[1] == run


def test_runs_are_listed_newest_first_a_page_at_a_time(unified):
    # Given the runs of two ingestions and two more asked for
    for _ in range(2):
        full_run(unified)
    stored = [i for i in unified.dynamodb.scan(TableName=unified.deployed.tables["ControlTable"])["Items"]
              if i["sk"]["S"].startswith("RUN#")]
    # When an auditor pages through them two at a time
    seen, cursor = [], None
    while True:
        status, page, _ = unified.api("GET", "/v1/unification/runs", role="auditor",
                                      query={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200, page
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Then each run comes once, newest first, as GET /v1/unification/runs/{id} shows it
    assert len(seen) == len(stored) >= 4
    assert [r["queued_at"] for r in seen] == sorted((r["queued_at"] for r in seen), reverse=True)
    assert seen[0] == unified.api("GET", f"/v1/unification/runs/{seen[0]['id']}")[1]
    assert unified.api("GET", "/v1/unification/runs", query={"cursor": "bm90LWEtcnVu"})[0] == 422


def test_removing_a_source_erases_its_rejection_reports(stack):
    stack.register("crm", {"mail": "email"})
    stack.ingest("crm", "customers.csv", b"id,mail\nc1,a@example.org\n,rejected.row@example.org\n")
    [ingestion] = stack.api("GET", "/v1/ingestions", query={"source": "crm"})[1]["items"]
    assert stack.api("GET", f"/v1/ingestions/{ingestion['id']}/rejections")[1]["items"]
    stack.api("DELETE", "/v1/sources/crm")
    stack.run_jobs()
    assert stack.s3.list_objects_v2(Bucket=stack.vault_bucket, Prefix="rejections/")["KeyCount"] == 0
    assert stack.api("GET", f"/v1/ingestions/{ingestion['id']}/rejections")[1]["items"] == []
    assert b"rejected.row@example.org" not in stack.stored_bytes()


def test_a_snapshot_whose_every_row_was_rejected_deletes_nothing(stack):
    load(stack, shop=False)
    stack.ingest("crm", "broken.csv", b"id,mail,given,family,born,tel\n,x,y,z,,\n,x,y,z,,\n")
    stack.api("POST", "/v1/refreshes")
    stack.run_jobs()
    assert stack.api("GET", "/v1/sources/crm")[1]["record_count"] == 3


def test_run_records_expire_through_dynamodb_ttl(stack):
    import time

    run = stack.api("POST", "/v1/unification/runs")[1]
    ttl = stack.dynamodb.describe_time_to_live(TableName=stack.deployed.tables["ControlTable"])
    item = stack.dynamodb.get_item(TableName=stack.deployed.tables["ControlTable"],
                                   Key={"pk": {"S": "TENANT#default"}, "sk": {"S": f"RUN#{run['id']}"}})["Item"]
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert 80 * 86400 < int(item["expires_at"]["N"]) - time.time() < 100 * 86400


def test_search_ignores_and_removes_an_index_entry_its_record_no_longer_has(unified):
    # Two writers of one record at the same moment: the older one's index entry for the old e-mail lands last.
    index = unified.deployed.tables["IndexTable"]
    before = unified.dynamodb.scan(TableName=index)["Items"]
    unified.ingest("crm", "customers-2.csv", CRM.replace("lea.vogt@", "lea.neu@").encode())
    for item in before:
        unified.dynamodb.put_item(TableName=index, Item={k: v for k, v in item.items() if k != "kid"})
    stale = len(unified.dynamodb.scan(TableName=index)["Items"])

    assert unified.api("POST", "/v1/profiles/search", body={"email": "lea.vogt@example.org"})[1]["items"] == []
    assert len(unified.dynamodb.scan(TableName=index)["Items"]) == stale - 1  # repaired on read
    [lea] = unified.api("POST", "/v1/profiles/search", body={"email": "lea.neu@example.org"})[1]["items"]
    assert {m["record_id"] for m in lea["members"]} == {"c3"}


def test_read_repair_keeps_an_index_entry_put_again_since_it_was_read(unified):
    index = unified.deployed.tables["IndexTable"]
    entry = unified.dynamodb.scan(TableName=index, Limit=1)["Items"][0]
    unified.dynamodb.put_item(TableName=index, Item={**entry, "kid": {"S": "written-since"}})
    records_of(unified)._delete_unless_rewritten(entry)
    assert unified.dynamodb.get_item(TableName=index, Key={"pk": entry["pk"], "sk": entry["sk"]}).get("Item")


# --- incremental runs --------------------------------------------------------------------------------------------

def last_run(stack) -> dict:
    items = stack.dynamodb.query(
        TableName=stack.deployed.tables["ControlTable"], KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
        ExpressionAttributeValues={":pk": {"S": "TENANT#" + stack.env["PV_TENANT_ID"]}, ":run": {"S": "RUN#"}})["Items"]
    return max((json.loads(i["doc"]["S"]) for i in items), key=lambda run: run["queued_at"])


def full_run(stack) -> dict:
    status, run, _ = stack.api("POST", "/v1/unification/runs")
    assert status == 202
    stack.run_jobs()
    return stack.api("GET", f"/v1/unification/runs/{run['id']}")[1]


LEA_IN_SHOP = b'{"order": "s4", "email": "lea.vogt@example.org", "first": "Lea", "last": "Vogt"}\n'


def test_a_run_after_an_arrival_reads_only_the_changed_records(unified):
    unified.ingest("shop", "2026/11/29/10/upserts/lea.jsonl", LEA_IN_SHOP, kind="incremental")
    run = last_run(unified)
    assert run["mode"] == "incremental" and run["counts"]["records_read"] == 1
    assert frozenset({("crm", "c3"), ("shop", "s4")}) in by_members(profiles(unified))
    # A full run over every record finds exactly what the incremental run stored
    full = full_run(unified)
    assert full["mode"] == "full" and full["counts"]["records_read"] == 7
    assert full["counts"]["profiles_written"] == full["counts"]["profiles_deleted"] == 0


def test_an_incremental_delete_splits_the_profile_it_joined(unified):
    unified.ingest("shop", "2026/11/29/11/deletes/gone.jsonl", b'{"order": "s1"}\n', kind="incremental")
    run = last_run(unified)
    assert run["mode"] == "incremental" and run["counts"]["records_read"] == 0
    groups = set(by_members(profiles(unified)))
    assert frozenset({("crm", "c1")}) in groups and not any(("shop", "s1") in g for g in groups)
    assert full_run(unified)["counts"]["profiles_written"] == 0


def test_a_changed_rule_set_makes_the_next_run_full(unified):
    unified.api("PUT", "/v1/unification/rules", body={"rules": [
        {"name": "same-email", "conditions": [{"attribute": "email", "precision": "exact"}]}]})
    unified.ingest("shop", "2026/11/29/10/upserts/lea.jsonl", LEA_IN_SHOP, kind="incremental")
    run = last_run(unified)
    assert run["mode"] == "full" and run["counts"]["records_read"] == 7
    assert frozenset({("crm", "c2")}) in by_members(profiles(unified))  # Jan's fuzzy match is no longer a rule


def test_a_lost_or_unreadable_state_is_rebuilt_by_a_full_run(unified):
    vault = unified.deployed.buckets["VaultBucket"]
    [state] = unified.s3.list_objects_v2(Bucket=vault, Prefix="unification/")["Contents"]
    body = bytearray(unified.s3.get_object(Bucket=vault, Key=state["Key"])["Body"].read())
    body[-1] ^= 1  # one flipped bit: the state no longer opens
    unified.s3.put_object(Bucket=vault, Key=state["Key"], Body=bytes(body))
    unified.ingest("shop", "2026/11/29/10/upserts/lea.jsonl", LEA_IN_SHOP, kind="incremental")
    assert last_run(unified)["mode"] == "full"
    unified.s3.delete_object(Bucket=vault, Key=unified.s3.list_objects_v2(Bucket=vault, Prefix="unification/")[
        "Contents"][0]["Key"])
    unified.ingest("shop", "2026/11/29/11/deletes/gone.jsonl", b'{"order": "s4"}\n', kind="incremental")
    assert last_run(unified)["mode"] == "full"
    assert frozenset({("crm", "c3")}) in by_members(profiles(unified))


def test_each_save_of_the_state_replaces_the_object_and_its_key(unified):
    vault = unified.deployed.buckets["VaultBucket"]
    before = unified.s3.list_objects_v2(Bucket=vault, Prefix="unification/")["Contents"]
    unified.ingest("shop", "2026/11/29/10/upserts/lea.jsonl", LEA_IN_SHOP, kind="incremental")
    after = unified.s3.list_objects_v2(Bucket=vault, Prefix="unification/")["Contents"]
    assert len(before) == len(after) == 1 and before[0]["Key"] != after[0]["Key"]
    keys = unified.dynamodb.scan(TableName=unified.deployed.tables["KeysTable"])["Items"]
    assert len([k for k in keys if k["sk"]["S"].startswith("UNIFICATION#STATE#K#")]) == 1


def test_a_save_sweeps_what_an_interrupted_save_left(unified):
    vault, keys = unified.deployed.buckets["VaultBucket"], unified.deployed.tables["KeysTable"]
    [state] = unified.s3.list_objects_v2(Bucket=vault, Prefix="unification/")["Contents"]
    leftover = state["Key"].rsplit("/", 1)[0] + "/state-leftover"
    unified.s3.put_object(Bucket=vault, Key=leftover, Body=b"sealed bytes of an older state")
    [key] = [k for k in unified.dynamodb.scan(TableName=keys)["Items"]
             if k["sk"]["S"].startswith("UNIFICATION#STATE#K#")]
    unified.dynamodb.put_item(TableName=keys, Item={**key, "sk": {"S": "UNIFICATION#STATE#K#leftover"}})
    full_run(unified)  # full runs sweep (the hourly refresh is one)
    assert len(unified.s3.list_objects_v2(Bucket=vault, Prefix="unification/")["Contents"]) == 1
    assert len([k for k in unified.dynamodb.scan(TableName=keys)["Items"]
                if k["sk"]["S"].startswith("UNIFICATION#STATE#K#")]) == 1


def test_a_run_stopped_before_saving_its_state_makes_the_next_one_full(unified, monkeypatch):
    def stop(*_args):
        raise RuntimeError("stopped")

    monkeypatch.setattr(unification_state, "save", stop)
    unified.drop("shop", "2026/11/29/10/upserts/lea.jsonl", LEA_IN_SHOP, kind="incremental")
    unified.deliver()
    assert unified.deliver(queue="JobsQueue", function="RefreshFunction")["batchItemFailures"]  # profiles written
    monkeypatch.undo()
    unified.ingest("shop", "2026/11/29/11/upserts/tom.jsonl",
                   b'{"order": "s6", "email": "tom@example.net", "first": "Tom", "last": "Klein"}\n',
                   kind="incremental")
    assert last_run(unified)["mode"] == "full"
    members = [(m["source"], m["record_id"]) for p in profiles(unified) for m in p["members"]]
    assert len(members) == len(set(members)) == 8  # every record in exactly one profile
    assert full_run(unified)["counts"]["profiles_written"] == 0


def tables_of(stack) -> Tables:
    return Tables(**{name: stack.deployed.tables[f"{name.title()}Table"]
                     for name in ("control", "records", "keys", "index", "profiles")})


def records_of(stack) -> RecordRepository:
    return RecordRepository(stack.dynamodb, tables_of(stack), stack.env["PV_TENANT_ID"])


def test_a_deletion_is_heard_even_when_the_first_try_stopped_before_its_journal_entry(unified, monkeypatch):
    records = records_of(unified)
    shop = [i["sk"]["S"][len("REC#"):] for i in unified.dynamodb.scan(TableName=unified.deployed.tables[
        "RecordsTable"])["Items"] if i["pk"]["S"].endswith("#SOURCE#shop")]
    monkeypatch.setattr(ChangeJournal, "add", lambda *_args: None)
    assert records.delete("shop", shop) == 3  # then the worker stopped
    monkeypatch.undo()
    assert records.delete("shop", shop) == 0  # the retry finds nothing
    [change] = records.journal.read()
    assert set(change.tokens) == set(shop)  # and still names what was deleted


def test_a_name_only_match_is_suggested_and_a_confirmed_one_joins(unified):
    unified.ingest("shop", "2026/11/29/10/upserts/lea.jsonl",
                   b'{"order": "s5", "email": "lea@private.example", "first": "Lea", "last": "Vogt"}\n',
                   kind="incremental")
    status, found, _ = unified.api("GET", "/v1/unification/suggestions")
    assert status == 200
    [suggestion] = found["items"]
    members = {frozenset((m["source"], m["record_id"]) for m in unified.api("GET", f"/v1/profiles/{pid}")[1]["members"])
               for pid in suggestion["profiles"]}
    assert members == {frozenset({("crm", "c3")}), frozenset({("shop", "s5")})}
    assert suggestion["reason"] == "same-full-name" and last_run(unified)["counts"]["suggestions"] == 1
    assert unified.api("GET", "/v1/unification/suggestions", role="analyst")[0] == 403
    assert unified.api("GET", "/v1/unification/suggestions", role="privacy_officer")[0] == 200
    # A steward confirms it with an always_match exception
    rules = unified.api("GET", "/v1/unification/rules")[1]
    rules["exceptions"] = [{"always_match": [{"source": "crm", "record_id": "c3"},
                                             {"source": "shop", "record_id": "s5"}]}]
    assert unified.api("PUT", "/v1/unification/rules", body=rules)[0] == 200
    full_run(unified)
    assert frozenset({("crm", "c3"), ("shop", "s5")}) in by_members(profiles(unified))
    assert unified.api("GET", "/v1/unification/suggestions")[1] == {"items": [], "next_cursor": None}


def test_a_source_registered_again_after_a_full_run_left_it_out_comes_back(unified):
    unified.api("DELETE", "/v1/sources/shop")
    unified.sqs.purge_queue(QueueUrl=unified.deployed.queues["JobsQueue"])  # its purge never ran
    assert full_run(unified)["counts"]["records"] == 3  # the state now holds crm only
    load(unified)  # shop registered again and its file ingested again
    run = last_run(unified)
    assert run["mode"] == "full" and run["counts"]["records"] == 6
    assert frozenset({("crm", "c1"), ("shop", "s1")}) in by_members(profiles(unified))
