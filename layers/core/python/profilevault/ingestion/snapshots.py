"""Full snapshots: whether a completed one may replace what its source holds, or is held for an admin.

Applying a snapshot deletes the source's records it did not bring. A broken export must not do that, on the hourly
schedule or otherwise, so a snapshot is held when it rejected rows (a rejected row is not a row the source
removed), brought no rows at all, or brought fewer than `min_snapshot_share` of the rows of the snapshot before it
(the last one that was not held). A held snapshot deletes nothing until an admin applies it
(POST /v1/ingestions/{id}/apply) or a later snapshot that is not held supersedes it.

The `snapshot` field of a full snapshot's ingestion says where it stands: pending (not held; the next refresh
applies it), held, approved (an admin applied it; the refresh queued with the approval applies it), applied,
superseded (a later snapshot was applied first). Ingestions written before these states existed have none and are
reviewed when a refresh first meets them.
"""
from collections.abc import Iterator

from profilevault.storage import store
from profilevault.wiring import Deps

PENDING, HELD, APPROVED, APPLIED, SUPERSEDED = "pending", "held", "approved", "applied", "superseded"
_NOT_A_BASELINE = (HELD, SUPERSEDED)
_PAGE = 100


def review(snapshot: dict, previous: dict | None, min_share: float) -> str | None:
    """Why the snapshot must be held, or None. Reasons carry counts and IDs only."""
    reasons = []
    rejected, stored = snapshot.get("rows_rejected") or 0, snapshot.get("rows_stored") or 0
    if rejected:
        reasons.append(f"{rejected} rejected row{'s' if rejected != 1 else ''}")
    if not stored:
        reasons.append("no rows")
    elif previous and stored < min_share * (previous.get("rows_stored") or 0):
        rows = f"{stored} row{'s' if stored != 1 else ''}"
        reasons.append(f"{rows}, fewer than {min_share:.0%} of the {previous['rows_stored']} rows of the previous "
                       f"snapshot ({previous['id']})")
    return "; ".join(reasons) or None


def completed_snapshots(deps: Deps, source: str) -> Iterator[dict]:
    """The source's completed full snapshots, newest first, read a page at a time."""
    after = None
    while True:
        page, after = store.page_ingestions(deps.dynamodb, deps.tables, deps.tenant, source, _PAGE, after)
        yield from (i for i in page if i.get("kind") == "full" and i.get("status") == "completed")
        if after is None:
            return


def _position(ingestion: dict) -> str:
    return f"{ingestion.get('started_at', '')}#{ingestion['id']}"


def _previous(snapshots: Iterator[dict] | list[dict], before: str) -> dict | None:
    """The snapshot a new one is compared with: the newest earlier one that was not held (legacy ones count when
    they stored rows)."""
    for snapshot in snapshots:
        if _position(snapshot) >= before:
            continue
        state = snapshot.get("snapshot")
        if state not in _NOT_A_BASELINE and (state or snapshot.get("rows_stored")):
            return snapshot
    return None


def decide(snapshot: dict, others, min_share: float) -> dict:
    """The snapshot fields of a snapshot just read (`others`: the source's snapshots, newest first): pending, or
    held and why."""
    previous = _previous(others, _position(snapshot))
    reason = review(snapshot, previous, min_share)
    return {"snapshot": HELD if reason else PENDING, "snapshot_reason": reason,
            "previous_rows": previous.get("rows_stored") if previous else None}


def state_of(deps: Deps, latest: dict, older: list[dict]) -> str:
    """The state of a source's newest snapshot; one from before snapshot states is decided now (and remembers)."""
    if not latest.get("snapshot"):
        fields = decide(latest, older, deps.min_snapshot_share)
        store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, latest["id"], fields)
        latest.update(fields)
    return latest["snapshot"]


def mark_applied(deps: Deps, latest: dict, older: list[dict]) -> None:
    if latest.get("snapshot") != APPLIED:
        store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, latest["id"],
                               {"snapshot": APPLIED, "applied_at": deps.now()})
    for snapshot in older:
        if snapshot.get("snapshot") in (PENDING, HELD, APPROVED):
            store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, snapshot["id"],
                                   {"snapshot": SUPERSEDED, "superseded_by": latest["id"]})


def summary(snapshot: dict) -> dict:
    """What the API shows of a held (or approved, not yet applied) snapshot: IDs, reason and counts."""
    shown = {"ingestion_id": snapshot["id"], "state": snapshot["snapshot"], "reason": snapshot.get("snapshot_reason"),
             "started_at": snapshot.get("started_at"), "rows_read": snapshot.get("rows_read", 0),
             "rows_stored": snapshot.get("rows_stored", 0), "rows_rejected": snapshot.get("rows_rejected", 0),
             "records_kept": snapshot.get("records_kept", 0), "previous_rows": snapshot.get("previous_rows")}
    if snapshot["snapshot"] == HELD:
        shown["apply_with"] = f"POST /v1/ingestions/{snapshot['id']}/apply"
    return shown


def waiting(deps: Deps, source: str) -> dict | None:
    """The source's newest snapshot when it is held or approved and not yet applied, as the API shows it."""
    latest = next(completed_snapshots(deps, source), None)
    if latest and latest.get("snapshot") in (HELD, APPROVED):
        return summary(latest)
    return None
