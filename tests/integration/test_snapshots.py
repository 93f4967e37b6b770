"""Full snapshots and refreshes through the real handlers: a broken export is held instead of deleting good records,
an admin can apply it, and a later good snapshot supersedes it."""
import json
import logging

import pytest

from tests.helpers import lambda_context, sample_event

THREE = b"id,mail\nS1,a@example.org\nS2,b@example.org\nS3,c@example.org\n"
FOUR = THREE + b"S4,d@example.org\n"


@pytest.fixture
def crm(stack):
    # Given a source that holds S1-S3 from an applied full snapshot
    stack.register("crm", {"mail": "email"})
    stack.ingest("crm", "v1.csv", THREE)
    refresh(stack)
    return stack


def refresh(stack) -> dict:
    status, queued, _ = stack.api("POST", "/v1/refreshes")
    assert status == 202, queued
    stack.run_jobs()
    run = stack.api("GET", f"/v1/refreshes/{queued['id']}")[1]
    assert run["status"] == "completed", run
    return run


def record_count(stack, source="crm") -> int:
    return stack.api("GET", f"/v1/sources/{source}")[1]["record_count"]


def latest_ingestion(stack, source="crm") -> dict:
    return stack.api("GET", "/v1/ingestions", query={"source": source})[1]["items"][0]


def test_a_ragged_row_in_a_new_snapshot_deletes_nothing_on_refresh(crm):
    # Given a new snapshot in which S2's row has a column too many
    crm.ingest("crm", "v2.csv", b"id,mail\nS1,a@example.org\nS2,b@example.org,extra\nS3,c@example.org\n")
    # When the snapshots are applied
    run = refresh(crm)
    # Then S2 is still there, and the refresh says it held the snapshot
    assert record_count(crm) == 3
    assert crm.api("GET", "/v1/sources/crm/records/S2")[0] == 200
    assert run["counts"]["records_deleted"] == 0 and run["counts"]["snapshots_held"] == 1


def test_a_stray_quote_that_swallows_rows_deletes_nothing_and_says_which_rows_it_took(stack):
    stack.register("crm", {"mail": "email"})
    stack.ingest("crm", "v1.csv", FOUR)
    refresh(stack)
    # Given a snapshot whose row 2 opens a quote that never closes, so rows 2-4 become one rejection
    stack.ingest("crm", "v2.csv", b'id,mail\nS1,a@example.org\nS2,"b@example.org\nS3,c@example.org\nS4,d@example.org\n')
    # When the snapshots are applied
    refresh(stack)
    # Then all four records remain, and the ingestion shows the rows the rejection took
    assert record_count(stack) == 4
    ingestion = latest_ingestion(stack)
    assert (ingestion["rows_read"], ingestion["rows_stored"], ingestion["rows_rejected"]) == (4, 1, 3)
    assert ingestion["multi_row_rejections"] == [{"rows": [2, 4], "reason": "malformed CSV: unexpected end of data"}]
    [rejection] = stack.api("GET", f"/v1/ingestions/{ingestion['id']}/rejections")[1]["items"]
    assert (rejection["row_number"], rejection["last_row_number"]) == (2, 4)


def test_a_header_only_snapshot_deletes_nothing_on_refresh(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\n")
    refresh(crm)
    assert record_count(crm) == 3


def test_the_hourly_schedule_holds_a_broken_snapshot_and_says_so(crm, caplog):
    crm.ingest("crm", "v2.csv", b"id,mail\n")
    # When EventBridge fires the schedule
    with caplog.at_level(logging.WARNING):
        queued = crm.handlers["RefreshFunction"](sample_event("refresh_schedule.json"),
                                                 lambda_context("RefreshFunction"))
        crm.run_jobs()
    # Then nothing is deleted, the refresh lists the held snapshot and a warning names it
    run = crm.api("GET", f"/v1/refreshes/{queued['id']}")[1]
    ingestion = latest_ingestion(crm)
    assert record_count(crm) == 3
    assert [h["ingestion_id"] for h in run["held_snapshots"]] == [ingestion["id"]]
    assert any("snapshot held" in r.getMessage() and getattr(r, "ingestion_id", None) == ingestion["id"]
               for r in caplog.records if r.name == "profilevault" and "refresh" in r.pathname)


def test_each_refresh_counts_the_snapshots_it_held_in_a_metric(crm, capsys):
    crm.ingest("crm", "v2.csv", b"id,mail\n")
    capsys.readouterr()
    refresh(crm)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"SnapshotsHeld"' in line]
    assert [d["SnapshotsHeld"] for d in documents] == [[1.0]]


def test_the_source_shows_its_held_snapshot_and_why(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\nS1,a@example.org\nS2,b@example.org,extra\nS3,c@example.org\n")
    ingestion = latest_ingestion(crm)
    held = crm.api("GET", "/v1/sources/crm")[1]["held_snapshot"]
    assert held["ingestion_id"] == ingestion["id"] and held["state"] == "held"
    assert held["reason"] == "1 rejected row"
    assert (held["rows_read"], held["rows_stored"], held["rows_rejected"], held["previous_rows"]) == (3, 2, 1, 3)
    assert ingestion["snapshot"] == "held" and ingestion["snapshot_reason"] == "1 rejected row"


def test_a_snapshot_with_far_fewer_rows_than_the_previous_one_is_held(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\nS1,a@example.org\n")
    refresh(crm)
    assert record_count(crm) == 3
    assert latest_ingestion(crm)["snapshot_reason"] == (
        "1 row, fewer than 50% of the 3 rows of the previous snapshot "
        f"({crm.api('GET', '/v1/ingestions', query={'source': 'crm'})[1]['items'][1]['id']})")


def test_a_snapshot_with_at_least_the_minimum_share_of_rows_is_applied(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\nS1,a@example.org\nS2,b@example.org\n")
    run = refresh(crm)
    assert record_count(crm) == 2 and run["counts"]["records_deleted"] == 1
    assert latest_ingestion(crm)["snapshot"] == "applied"
    assert crm.api("GET", "/v1/sources/crm")[1]["held_snapshot"] is None


@pytest.mark.handler_env(PV_MIN_SNAPSHOT_SHARE="0.9")
def test_the_minimum_share_comes_from_the_environment(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\nS1,a@example.org\nS2,b@example.org\n")
    refresh(crm)
    assert record_count(crm) == 3 and latest_ingestion(crm)["snapshot"] == "held"


def test_the_template_passes_min_snapshot_share_to_the_functions(stack):
    assert {spec.env.get("PV_MIN_SNAPSHOT_SHARE") for spec in stack.deployed.functions.values()} == {"0.5"}


def test_an_admin_applies_a_held_snapshot_and_rejected_rows_keep_their_records(crm):
    # Given a held snapshot that drops S3 and rejects S2's row (whose key can still be read)
    crm.ingest("crm", "v2.csv", b"id,mail\nS1,a@example.org\nS2,b@example.org,extra\n")
    ingestion = latest_ingestion(crm)
    assert ingestion["records_kept"] == 1
    # When an admin applies it
    status, applied, _ = crm.api("POST", f"/v1/ingestions/{ingestion['id']}/apply")
    assert status == 202 and applied["snapshot"] == "approved"
    crm.run_jobs()
    # Then the queued refresh deletes S3 only: S2's rejected row kept its record
    run = crm.api("GET", f"/v1/refreshes/{applied['refresh_id']}")[1]
    assert run["status"] == "completed" and run["counts"]["records_deleted"] == 1
    assert crm.api("GET", "/v1/sources/crm/records/S2")[0] == 200
    assert crm.api("GET", "/v1/sources/crm/records/S3")[0] == 404
    assert latest_ingestion(crm)["snapshot"] == "applied"


def test_an_applied_header_only_snapshot_empties_the_source(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\n")
    ingestion = latest_ingestion(crm)
    assert crm.api("POST", f"/v1/ingestions/{ingestion['id']}/apply")[0] == 202
    crm.run_jobs()
    assert record_count(crm) == 0


def test_a_later_snapshot_that_is_not_held_supersedes_a_held_one(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\n")
    held = latest_ingestion(crm)
    crm.ingest("crm", "v3.csv", b"id,mail\nS1,a@example.org\nS2,b@example.org\n")
    refresh(crm)
    assert record_count(crm) == 2
    assert crm.api("GET", f"/v1/ingestions/{held['id']}")[1]["snapshot"] == "superseded"
    status, problem, _ = crm.api("POST", f"/v1/ingestions/{held['id']}/apply")
    assert status == 409 and "supersedes" in problem["detail"]


def test_a_snapshot_that_is_not_held_cannot_be_applied(crm):
    applied = latest_ingestion(crm)
    status, problem, _ = crm.api("POST", f"/v1/ingestions/{applied['id']}/apply")
    assert status == 409 and "not held" in problem["detail"]


def test_only_an_admin_applies_a_held_snapshot(crm):
    crm.ingest("crm", "v2.csv", b"id,mail\n")
    held = latest_ingestion(crm)
    assert crm.api("POST", f"/v1/ingestions/{held['id']}/apply", role="analyst")[0] == 403
    assert crm.api("POST", "/v1/ingestions/ing_000000000000000000000000/apply")[0] == 404
    assert crm.api("GET", f"/v1/ingestions/{held['id']}")[1]["snapshot"] == "held"


def test_the_api_document_shows_held_snapshots_and_the_rows_ingestions_name(stack):
    _, spec, _ = stack.api("GET", "/v1/docs", role=None, query={"format": "json"})
    schemas = spec["components"]["schemas"]

    def body(path, method, status="200"):
        ref = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[-1]]["properties"]

    assert "held_snapshot" in body("/v1/sources/{name}", "get")
    assert {"snapshot", "snapshot_reason", "records_kept", "multi_row_rejections", "duplicate_key_rows"} <= set(
        body("/v1/ingestions/{ingestion_id}", "get"))
    assert {"ingestion_id", "snapshot", "refresh_id"} <= set(body("/v1/ingestions/{ingestion_id}/apply", "post",
                                                                  "202"))
    assert "held_snapshots" in body("/v1/refreshes/{refresh_id}", "get")
    assert {"ingestion_id", "state", "reason", "apply_with"} <= set(schemas["HeldSnapshot"]["properties"])
    assert "snapshots_held" in schemas["RunCounts"]["properties"]
    assert "last_row_number" in schemas["Rejection"]["properties"]
