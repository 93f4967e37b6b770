"""Keeping profiles current: full snapshots replace what came before, removed sources are purged, and every
change ends in a unification run over what is left."""
from profilevault import jobs
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.domain.runs import FINAL, Run
from profilevault.domain.sources import check_source_name
from profilevault.errors import NotFound
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


def apply_snapshots(deps: Deps) -> int:
    """A source's latest completed full snapshot is complete: records it did not bring (and no later incremental
    upsert brought) are deleted, keys and index entries with them."""
    deleted = 0
    for source in deps.sources.list():
        # A "snapshot" whose every row was rejected is a broken export, not an empty source: it deletes nothing.
        fulls = [i for i in deps.ingestions.of_source(source.name)
                 if i.kind == "full" and i.status == "completed" and (i.rows_stored or not i.rows_rejected)]
        if not fulls:
            continue
        cutoff = fulls[0].started_at  # newest first
        stale = [token for token, stamp in deps.records.stamps(source.name) if stamp < cutoff]
        deleted += deps.records.delete(source.name, stale)
    return deleted


@capture_method
def run_refresh(deps: Deps, run_id: str) -> Run | None:
    """Applies the snapshots, then a full unification run: the hourly reconciliation of whatever incremental runs
    may have missed."""
    run = deps.runs.get(run_id)
    if run is None or run.status in FINAL:  # a job delivered again after its run finished
        return run
    return runs.run_unification(deps, run_id, full=True, records_deleted=apply_snapshots(deps))


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
