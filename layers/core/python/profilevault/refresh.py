"""Keeping profiles current: full snapshots replace what came before, removed sources are purged, and every
change ends in a unification run over what is left."""
from profilevault import jobs, observability
from profilevault.domain.sources import check_source_name
from profilevault.errors import Conflict, NotFound
from profilevault.ingestion import snapshots
from profilevault.observability import capture_method, logger
from profilevault.profiles import runs
from profilevault.storage import objects, profile_store, store
from profilevault.wiring import Deps, profile_tables, record_marks


def queue_refresh(deps: Deps, trigger: str) -> dict:
    return jobs.queue_job(deps, "refresh", trigger)


def apply_snapshots(deps: Deps) -> tuple[int, list[dict]]:
    """A source's newest completed full snapshot is complete: records it did not bring (no later incremental
    upsert brought, and none of its rejected rows named) are deleted, keys and index entries with them. A held
    snapshot deletes nothing (see ingestion.snapshots). Returns the records deleted and the snapshots held."""
    deleted, held = 0, []
    marks = record_marks(deps)
    for source in store.list_sources(deps.dynamodb, deps.tables, deps.tenant):
        fulls = list(snapshots.completed_snapshots(deps, source["name"]))
        if not fulls:
            continue
        latest, older = fulls[0], fulls[1:]
        if snapshots.state_of(deps, latest, older) == snapshots.HELD:
            logger.warning("full snapshot held: nothing deleted until an admin applies it or a later snapshot "
                           "supersedes it", extra={"ingestion_id": latest["id"], "reason": latest["snapshot_reason"]})
            held.append(snapshots.summary(latest))
            continue
        cutoff = latest["started_at"]
        stale = [token for token, stamp in marks.stamps(source["name"]) if stamp < cutoff]
        deleted += store.delete_records(deps.dynamodb, deps.tables, deps.tenant, source["name"], stale)
        snapshots.mark_applied(deps, latest, older)
    return deleted, held


@capture_method
def run_refresh(deps: Deps, run_id: str) -> dict:
    """Applies the snapshots, then a full unification run: the hourly reconciliation of whatever incremental runs
    may have missed."""
    deleted, held = apply_snapshots(deps)
    run = runs.run_unification(deps, run_id, full=True)
    run["counts"]["records_deleted"] = deleted
    run["counts"]["snapshots_held"] = len(held)
    run["held_snapshots"] = held
    observability.snapshots_held(len(held))
    profile_store.put_run(deps.dynamodb, profile_tables(deps), deps.tenant, run)
    return run


def approve_snapshot(deps: Deps, ingestion_id: str) -> dict:
    """An admin applies a held snapshot: it is approved, and a refresh queued at once applies it (deleting what it
    did not bring). Only a source's newest snapshot can be applied: a later one has superseded the others."""
    ingestion = store.get_ingestion(deps.dynamodb, deps.tables, deps.tenant, ingestion_id)
    if ingestion.get("kind") != "full" or ingestion.get("status") != "completed":
        raise Conflict(f"ingestion {ingestion_id} is not a completed full snapshot")
    newest = next(snapshots.completed_snapshots(deps, ingestion["source"]), None)
    if newest is not None and newest["id"] != ingestion_id:
        raise Conflict(f"a later snapshot ({newest['id']}) supersedes ingestion {ingestion_id}")
    if ingestion.get("snapshot") not in (snapshots.HELD, snapshots.APPROVED):
        raise Conflict(f"snapshot {ingestion_id} is not held (it is {ingestion.get('snapshot') or 'not reviewed'})")
    store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, ingestion_id,
                           {"snapshot": snapshots.APPROVED, "approved_at": deps.now()})
    logger.info("held snapshot applied by an admin", extra={"ingestion_id": ingestion_id})
    refresh = queue_refresh(deps, trigger=f"snapshot {ingestion_id} applied")
    return {"ingestion_id": ingestion_id, "snapshot": snapshots.APPROVED, "refresh_id": refresh["id"]}


def remove_source(deps: Deps, name: str) -> dict:
    """Unregisters the source at once (new drops are refused) and queues the purge of its records."""
    check_source_name(name)
    if store.get_source(deps.dynamodb, deps.tables, deps.tenant, name) is None:
        raise NotFound(f"no source {name!r}")
    store.delete_source(deps.dynamodb, deps.tables, deps.tenant, name)
    return jobs.queue_job(deps, "purge_source", "source removed", source=name)


@capture_method
def purge_source(deps: Deps, name: str, run_id: str) -> dict:
    if store.get_source(deps.dynamodb, deps.tables, deps.tenant, name) is not None:
        logger.info("source registered again before its purge ran; records kept", extra={"run_id": run_id})
        # Full: a full run while the source was unregistered left its records out of the saved state.
        return runs.run_unification(deps, run_id, full=True)
    tokens = store.all_record_tokens(deps.dynamodb, deps.tables, deps.tenant, name)
    deleted = store.delete_records(deps.dynamodb, deps.tables, deps.tenant, name, tokens)
    erase_rejection_reports(deps, name)
    run = runs.run_unification(deps, run_id)
    run["counts"]["records_deleted"] = deleted
    profile_store.put_run(deps.dynamodb, profile_tables(deps), deps.tenant, run)
    return run


def erase_rejection_reports(deps: Deps, source: str) -> None:
    """Rejected rows are personal data too: a removed source takes its reports (and their keys) with it."""
    reports = [i for i in store.list_ingestions(deps.dynamodb, deps.tables, deps.tenant, source)
               if i.get("rejection_report")]
    for ingestion in reports:
        store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, ingestion["id"],
                               {"rejection_report": None, "report_key": None})
    objects.delete_objects(deps.s3, deps.vault_bucket, [i["rejection_report"] for i in reports])
