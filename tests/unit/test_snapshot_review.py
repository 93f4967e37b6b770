"""Whether a full snapshot is held (profilevault.ingestion.snapshots.decide): pure, over ingestions."""
from profilevault.domain.ingestions import Ingestion
from profilevault.ingestion.snapshots import HELD, PENDING, decide


def snapshot(n: int, stored: int, rejected: int = 0, state: str | None = PENDING) -> Ingestion:
    return Ingestion.model_validate({
        "id": f"ing_{n}", "source": "crm", "file": f"sources/crm/full/v{n}.csv", "status": "completed",
        "kind": "full", "operation": "upserts", "started_at": f"2026-11-30T10:0{n}:00.000+00:00",
        "rows_stored": stored, "rows_rejected": rejected, "snapshot": state})


def test_a_snapshot_is_compared_with_the_last_one_that_was_not_held():
    # Given 1,000 rows applied, then a held snapshot of 10 rows
    older = [snapshot(2, 10, state=HELD), snapshot(1, 1000, state="applied")]
    # When another 10-row snapshot arrives / Then it is held too: the held one is no yardstick
    decided = decide(snapshot(3, 10, state=None), older, 0.5)
    assert decided["snapshot"] == HELD and decided["previous_rows"] == 1000


def test_a_superseded_snapshot_is_no_yardstick_either():
    older = [snapshot(2, 10, state="superseded"), snapshot(1, 1000, state="applied")]
    assert decide(snapshot(3, 400, state=None), older, 0.5)["snapshot"] == HELD


def test_a_snapshot_from_before_snapshot_states_counts_when_it_stored_rows():
    older = [snapshot(2, 0, rejected=5, state=None), snapshot(1, 100, state=None)]
    assert decide(snapshot(3, 60, state=None), older, 0.5) == {"snapshot": PENDING, "snapshot_reason": None,
                                                              "previous_rows": 100}


def test_later_snapshots_are_not_compared_with():
    newer = [snapshot(5, 1000, state="applied")]
    assert decide(snapshot(3, 10, state=None), newer, 0.5)["previous_rows"] is None


def test_the_first_snapshot_of_a_source_is_held_only_when_it_is_empty_or_rejected_rows():
    assert decide(snapshot(1, 3, state=None), [], 0.5)["snapshot"] == PENDING
    assert decide(snapshot(1, 0, state=None), [], 0.5)["snapshot_reason"] == "no rows"
    assert decide(snapshot(1, 3, rejected=2, state=None), [], 0.5)["snapshot_reason"] == "2 rejected rows"


def test_a_share_of_zero_holds_only_empty_snapshots_and_rejections():
    older = [snapshot(1, 1000, state="applied")]
    assert decide(snapshot(2, 1, state=None), older, 0.0)["snapshot"] == PENDING
