"""Keeping profiles current: full snapshots replace what came before, removed sources are purged, and every
change ends in a unification run over what is left."""
from profilevault import jobs, observability
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.domain.ingestions import HeldSnapshot, SnapshotApproval
from profilevault.domain.runs import FINAL, Run
from profilevault.domain.sources import check_source_name
from profilevault.errors import Conflict, NotFound
from profilevault.ingestion import snapshots
from profilevault.observability import capture_method, logger
from profilevault.profiles import runs
from profilevault.storage import objects
from profilevault.wiring import Deps


def queue_refresh(deps: Deps, trigger: str, actor: Actor) -> Run:
    run = jobs.queue_job(deps, "refresh", trigger)
    trail.record(deps, "refresh.queued", actor, {"run_id": run.id})
    return run


def on_schedule(deps: Deps) -> Run:
    """The hourly schedule: a refresh, through the jobs queue like every other run."""
    return queue_refresh(deps, trigger="schedule", actor=Actor.system("schedule"))


def apply_snapshots(deps: Deps) -> tuple[int, list[HeldSnapshot]]:
    """A source's newest completed full snapshot is complete: records it did not bring (no later incremental
    upsert brought, and none of its rejected rows named) are deleted, keys and index entries with them. A held
    snapshot deletes nothing (see ingestion.snapshots). Returns the records deleted and the snapshots held."""
    deleted, held = 0, []
    for source in deps.sources.list():
        fulls = list(snapshots.completed_snapshots(deps, source.name))
        if not fulls:
            continue
        latest, older = snapshots.reviewed(deps, fulls[0], fulls[1:]), fulls[1:]
        if latest.snapshot == snapshots.HELD:
            logger.warning("full snapshot held: nothing deleted until an admin applies it or a later snapshot "
                           "supersedes it", extra={"ingestion_id": latest.id, "reason": latest.snapshot_reason})
            held.append(HeldSnapshot.of(latest))
            continue
        cutoff = latest.started_at
        stale = [token for token, stamp in deps.records.stamps(source.name) if stamp < cutoff]
        deleted += deps.records.delete(source.name, stale)
        snapshots.mark_applied(deps, latest, older)
    return deleted, held


@capture_method
def run_refresh(deps: Deps, run_id: str) -> Run | None:
    """Applies the snapshots, then a full unification run: the hourly reconciliation of whatever incremental runs
    may have missed."""
    run = deps.runs.get(run_id)
    if run is None or run.status in FINAL:  # a job delivered again after its run finished
        return run
    deleted, held = apply_snapshots(deps)
    observability.snapshots_held(len(held))
    return runs.run_unification(deps, run_id, full=True, records_deleted=deleted, held_snapshots=held)


def approve_snapshot(deps: Deps, ingestion_id: str, actor: Actor) -> SnapshotApproval:
    """An admin applies a held snapshot: it is approved, and a refresh queued at once applies it (deleting what it
    did not bring). Only a source's newest snapshot can be applied: a later one has superseded the others."""
    ingestion = deps.ingestions.get(ingestion_id)
    if ingestion.kind != "full" or ingestion.status != "completed":
        raise Conflict(f"ingestion {ingestion_id} is not a completed full snapshot")
    newest = next(snapshots.completed_snapshots(deps, ingestion.source), None)
    if newest is not None and newest.id != ingestion_id:
        raise Conflict(f"a later snapshot ({newest.id}) supersedes ingestion {ingestion_id}")
    if ingestion.snapshot not in (snapshots.HELD, snapshots.APPROVED):
        raise Conflict(f"snapshot {ingestion_id} is not held (it is {ingestion.snapshot or 'not reviewed'})")
    deps.ingestions.update(ingestion_id, snapshot=snapshots.APPROVED, approved_at=deps.now())
    logger.info("held snapshot applied by an admin", extra={"ingestion_id": ingestion_id})
    refresh = queue_refresh(deps, trigger=f"snapshot {ingestion_id} applied", actor=actor)
    return SnapshotApproval(ingestion_id=ingestion_id, snapshot="approved", refresh_id=refresh.id)


def remove_source(deps: Deps, name: str, actor: Actor) -> Run:
    """Unregisters the source at once (new drops are refused) and queues the purge of its records."""
    check_source_name(name)
    if deps.sources.get(name) is None:
        raise NotFound(f"no source {name!r}")
    deps.sources.delete(name)
    run = jobs.queue_job(deps, "purge_source", "source removed", source=name)
    trail.record(deps, "source.removed", actor, {"source": name, "run_id": run.id})
    return run


@capture_method
def purge_source(deps: Deps, name: str, run_id: str) -> Run | None:
    if deps.sources.get(name) is not None:
        logger.info("source registered again before its purge ran; records kept", extra={"run_id": run_id})
        # Full: a full run while the source was unregistered left its records out of the saved state.
        return runs.run_unification(deps, run_id, full=True)
    deleted = deps.records.delete(name, deps.records.tokens(name))
    erase_rejection_reports(deps, name)
    return runs.run_unification(deps, run_id, records_deleted=deleted)


def erase_rejection_reports(deps: Deps, source: str) -> None:
    """Rejected rows are personal data too: a removed source takes its reports (and their keys) with it."""
    reports = [i for i in deps.ingestions.of_source(source) if i.rejection_report]
    for ingestion in reports:
        deps.ingestions.update(ingestion.id, rejection_report=None, report_key=None)
    objects.delete_objects(deps.s3, deps.vault_bucket, [i.rejection_report for i in reports if i.rejection_report])
