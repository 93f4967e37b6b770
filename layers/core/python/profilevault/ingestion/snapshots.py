"""Full snapshots: whether a completed one may replace what its source holds, or is held for an admin.

Applying a snapshot deletes the source's records it did not bring. A broken export must not do that, on the hourly
schedule or otherwise, so a snapshot is held when it rejected rows (a rejected row is not a row the source
removed), brought no rows at all, or brought fewer than `min_snapshot_share` of the rows of the snapshot before it
(the last one that was not held). A held snapshot deletes nothing until an admin applies it
(POST /v1/ingestions/{id}/apply) or a later snapshot that is not held supersedes it.

The `snapshot` field of a full snapshot's ingestion says where it stands (`domain.ingestions.SnapshotState`):
pending (not held; the next refresh applies it), held, approved (an admin applied it; the refresh queued with the
approval applies it), applied, superseded (a later snapshot was applied first). Ingestions written before these
states existed have none and are reviewed when a refresh first meets them.
"""
from collections.abc import Iterable, Iterator

from profilevault.domain.ingestions import HeldSnapshot, Ingestion
from profilevault.wiring import Deps

PENDING, HELD, APPROVED, APPLIED, SUPERSEDED = "pending", "held", "approved", "applied", "superseded"
_NOT_A_BASELINE = (HELD, SUPERSEDED)
_PAGE = 100


def review(snapshot: Ingestion, previous: Ingestion | None, min_share: float) -> str | None:
    """Why the snapshot must be held, or None. Reasons carry counts and IDs only."""
    reasons = []
    rejected, stored = snapshot.rows_rejected, snapshot.rows_stored
    if rejected:
        reasons.append(f"{rejected} rejected row{'s' if rejected != 1 else ''}")
    if not stored:
        reasons.append("no rows")
    elif previous and stored < min_share * previous.rows_stored:
        rows = f"{stored} row{'s' if stored != 1 else ''}"
        reasons.append(f"{rows}, fewer than {min_share:.0%} of the {previous.rows_stored} rows of the previous "
                       f"snapshot ({previous.id})")
    return "; ".join(reasons) or None


def completed_snapshots(deps: Deps, source: str) -> Iterator[Ingestion]:
    """The source's completed full snapshots, newest first, read a page at a time."""
    after = None
    while True:
        page, after = deps.ingestions.page(source, _PAGE, after)
        yield from (i for i in page if i.kind == "full" and i.status == "completed")
        if after is None:
            return


def _previous(snapshots: Iterable[Ingestion], before: str) -> Ingestion | None:
    """The snapshot a new one is compared with: the newest earlier one that was not held (legacy ones count when
    they stored rows)."""
    for snapshot in snapshots:
        if snapshot.position >= before:
            continue
        state = snapshot.snapshot
        if state not in _NOT_A_BASELINE and (state or snapshot.rows_stored):
            return snapshot
    return None


def decide(snapshot: Ingestion, others: Iterable[Ingestion], min_share: float) -> dict:
    """The snapshot fields of a snapshot just read (`others`: the source's snapshots, newest first): pending, or
    held and why."""
    previous = _previous(others, snapshot.position)
    reason = review(snapshot, previous, min_share)
    return {"snapshot": HELD if reason else PENDING, "snapshot_reason": reason,
            "previous_rows": previous.rows_stored if previous else None}


def reviewed(deps: Deps, latest: Ingestion, older: list[Ingestion]) -> Ingestion:
    """A source's newest snapshot with its state; one from before snapshot states is decided now (and remembers)."""
    if latest.snapshot:
        return latest
    fields = decide(latest, older, deps.min_snapshot_share)
    deps.ingestions.update(latest.id, **fields)
    return latest.model_copy(update=fields)


def mark_applied(deps: Deps, latest: Ingestion, older: list[Ingestion]) -> None:
    if latest.snapshot != APPLIED:
        deps.ingestions.update(latest.id, snapshot=APPLIED, applied_at=deps.now())
    for snapshot in older:
        if snapshot.snapshot in (PENDING, HELD, APPROVED):
            deps.ingestions.update(snapshot.id, snapshot=SUPERSEDED, superseded_by=latest.id)


def waiting(deps: Deps, source: str) -> HeldSnapshot | None:
    """The source's newest snapshot when it is held or approved and not yet applied, as the API shows it."""
    latest = next(completed_snapshots(deps, source), None)
    if latest and latest.snapshot in (HELD, APPROVED):
        return HeldSnapshot.of(latest)
    return None
