"""Keeping profiles current: full snapshots replace what came before, removed sources are purged, and every
change ends in a unification run over what is left."""
from profilevault import jobs
from profilevault.domain.sources import check_source_name
from profilevault.errors import NotFound
from profilevault.observability import capture_method, logger
from profilevault.profiles import runs
from profilevault.storage import objects, profile_store, store
from profilevault.wiring import Deps, profile_tables


def queue_refresh(deps: Deps, trigger: str) -> dict:
    return jobs.queue_job(deps, "refresh", trigger)


def apply_snapshots(deps: Deps) -> int:
    """A source's latest completed full snapshot is complete: records it did not bring (and no later incremental
    upsert brought) are deleted, keys and index entries with them."""
    deleted = 0
    for source in store.list_sources(deps.dynamodb, deps.tables, deps.tenant):
        # A "snapshot" whose every row was rejected is a broken export, not an empty source: it deletes nothing.
        fulls = [i for i in store.list_ingestions(deps.dynamodb, deps.tables, deps.tenant, source["name"])
                 if i.get("kind") == "full" and i.get("status") == "completed"
                 and (i.get("rows_stored") or not i.get("rows_rejected"))]
        if not fulls:
            continue
        cutoff = fulls[0]["started_at"]  # newest first
        stale = [token for token, stamp in store.record_stamps(deps.dynamodb, deps.tables, deps.tenant,
                                                                source["name"]) if stamp < cutoff]
        deleted += store.delete_records(deps.dynamodb, deps.tables, deps.tenant, source["name"], stale)
    return deleted


@capture_method
def run_refresh(deps: Deps, run_id: str) -> dict:
    """Applies the snapshots, then a full unification run: the hourly reconciliation of whatever incremental runs
    may have missed."""
    deleted = apply_snapshots(deps)
    run = runs.run_unification(deps, run_id, full=True)
    run["counts"]["records_deleted"] = deleted
    profile_store.put_run(deps.dynamodb, profile_tables(deps), deps.tenant, run)
    return run


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
