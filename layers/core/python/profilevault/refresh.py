"""Keeping profiles current: full snapshots replace what came before, removed sources are purged, and every
change ends in a unification run over what is left."""
import uuid

from profilevault import jobs, profile_store, profiles, store
from profilevault.errors import NotFound
from profilevault.observability import logger
from profilevault.sources import check_source_name
from profilevault.wiring import Deps


def queue_refresh(deps: Deps, trigger: str) -> dict:
    refresh = {"id": "ref_" + uuid.uuid4().hex[:20], "type": "refresh", "status": "queued", "trigger": trigger,
               "queued_at": deps.now()}
    profile_store.put_run(deps.dynamodb, profiles.tables(deps), deps.tenant, refresh)
    jobs.enqueue(deps, {"type": "refresh", "run_id": refresh["id"]})
    return refresh


def apply_snapshots(deps: Deps) -> int:
    """A source's latest completed full snapshot is complete: records it did not bring (and no later incremental
    upsert brought) are deleted, keys and index entries with them."""
    deleted = 0
    for source in store.list_sources(deps.dynamodb, deps.tables, deps.tenant):
        fulls = [i for i in store.list_ingestions(deps.dynamodb, deps.tables, deps.tenant, source["name"])
                 if i.get("kind") == "full" and i.get("status") == "completed"]
        if not fulls:
            continue
        cutoff = fulls[0]["started_at"]  # newest first
        stale = [token for token, stamp in store.record_stamps(deps.dynamodb, deps.tables, deps.tenant,
                                                                source["name"]) if stamp < cutoff]
        deleted += store.delete_records(deps.dynamodb, deps.tables, deps.tenant, source["name"], stale)
    return deleted


def run_refresh(deps: Deps, run_id: str) -> dict:
    deleted = apply_snapshots(deps)
    run = profiles.run_unification(deps, run_id)
    run["counts"]["records_deleted"] = deleted
    profile_store.put_run(deps.dynamodb, profiles.tables(deps), deps.tenant, run)
    return run


def remove_source(deps: Deps, name: str) -> dict:
    """Unregisters the source at once (new drops are refused) and queues the purge of its records."""
    check_source_name(name)
    if store.get_source(deps.dynamodb, deps.tables, deps.tenant, name) is None:
        raise NotFound(f"no source {name!r}")
    store.delete_source(deps.dynamodb, deps.tables, deps.tenant, name)
    run = {"id": "run_" + uuid.uuid4().hex[:20], "status": "queued", "trigger": f"source removed: {name}",
           "queued_at": deps.now()}
    profile_store.put_run(deps.dynamodb, profiles.tables(deps), deps.tenant, run)
    jobs.enqueue(deps, {"type": "purge_source", "source": name, "run_id": run["id"]})
    return run


def purge_source(deps: Deps, name: str, run_id: str) -> dict:
    if store.get_source(deps.dynamodb, deps.tables, deps.tenant, name) is not None:
        logger.info("source registered again before its purge ran; records kept", extra={"run_id": run_id})
        return profiles.run_unification(deps, run_id)
    tokens = store.all_record_tokens(deps.dynamodb, deps.tables, deps.tenant, name)
    deleted = store.delete_records(deps.dynamodb, deps.tables, deps.tenant, name, tokens)
    run = profiles.run_unification(deps, run_id)
    run["counts"]["records_deleted"] = deleted
    profile_store.put_run(deps.dynamodb, profiles.tables(deps), deps.tenant, run)
    return run
