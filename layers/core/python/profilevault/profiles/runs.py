"""Unification runs over the stored records.

A run clusters every record of the tenant with the tenant's rule set (profilevault.unification) and writes back only
what changed: profiles whose sealed content differs, profiles that disappeared, member-map entries that moved. Runs
after an ingestion or a source purge are incremental: they start from the sealed state of the last run and re-read
only the records the change journal names (see unification_state). A run on request (POST /v1/unification/runs)
and every refresh (hourly, or POST /v1/refreshes) is full: it reads every record again and rebuilds that state."""
import hmac
import json
import time
from collections import defaultdict

from profilevault import jobs, observability
from profilevault.errors import NotFound
from profilevault.keys import vault
from profilevault.observability import capture_method, logger
from profilevault.profiles import rulesets
from profilevault.profiles import state as unification_state
from profilevault.storage import profile_store, store
from profilevault.storage.profile_store import PROFILES
from profilevault.unification import MemberRef, UnifyRecord, explain, suggest, unify
from profilevault.wiring import Deps, profile_tables


def queue_run(deps: Deps, trigger: str) -> dict:
    """A full run: every record read again from DynamoDB, the saved state rebuilt."""
    return jobs.queue_job(deps, "unify", trigger, mode="full")


def queue_run_after_ingestion(deps: Deps, ingestion_id: str) -> None:
    """Files tend to arrive in bursts: the run waits a few seconds, and a run whose successor is already queued
    leaves the work to it (see run_unification)."""
    jobs.queue_job(deps, "unify", "ingestion", delay_seconds=deps.ingestion_batch_window_seconds)


def get_run(deps: Deps, run_id: str) -> dict:
    run = profile_store.get_run(deps.dynamodb, profile_tables(deps), deps.tenant, run_id)
    if run is None:
        raise NotFound(f"no unification run {run_id}")
    return run


def mark_run_failed(deps: Deps, run_id: str, reason: str) -> None:
    """A run whose job is about to land in the dead-letter queue says so, instead of staying 'running'."""
    run = profile_store.get_run(deps.dynamodb, profile_tables(deps), deps.tenant, run_id) or {"id": run_id}
    run.update(status="failed", reason=reason, finished_at=deps.now())
    profile_store.put_run(deps.dynamodb, profile_tables(deps), deps.tenant, run)


def read_all(deps: Deps, ruleset: str, sources: list[dict]) -> unification_state.State:
    """The state rebuilt from DynamoDB: every record of the registered `sources`, opened, the member map and the
    stored profiles."""
    records = {}
    for source in sources:
        for record_item, key_item in store.iter_record_items(deps.dynamodb, deps.tables, deps.tenant, source["name"]):
            token = record_item["sk"]["S"][len("REC#"):]
            records[(source["name"], token)] = unification_state.opened(
                vault.open_record(deps.keyring, record_item, key_item))
    t = profile_tables(deps)
    return unification_state.State(ruleset, unification_state.registered(sources), records,
                                   profile_store.read_member_map(deps.dynamodb, t, deps.tenant),
                                   profile_store.stored_profiles(deps.dynamodb, t, deps.tenant))


@capture_method
def run_unification(deps: Deps, run_id: str, full: bool = False) -> dict:
    """Incremental unless asked for a full run (or the saved state cannot be used): the journaled changes are
    applied to the state of the last run, the clusters recomputed in memory and only what changed written."""
    t = profile_tables(deps)
    run = profile_store.get_run(deps.dynamodb, t, deps.tenant, run_id) or {"id": run_id}
    if run.get("status") in ("completed", "superseded"):
        return run
    if run.get("trigger") == "ingestion" and profile_store.newer_queued_run(
            deps.dynamodb, t, deps.tenant, run, trigger="ingestion"):
        run.update(status="superseded", finished_at=deps.now())
        profile_store.put_run(deps.dynamodb, t, deps.tenant, run)
        return run
    started = time.monotonic()
    run.update(status="running", started_at=deps.now())
    profile_store.put_run(deps.dynamodb, t, deps.tenant, run)
    ruleset = rulesets.get_ruleset(deps)
    digest = unification_state.ruleset_digest(deps, ruleset)
    changes = store.read_changes(deps.dynamodb, deps.tables, deps.tenant)  # before reading: later ones stay
    sources = store.list_sources(deps.dynamodb, deps.tables, deps.tenant)
    state = None if full or run.get("mode") == "full" else unification_state.load(
        deps, t, digest, unification_state.registered(sources))
    if state is None:
        state, mode = read_all(deps, digest, sources), "full"
        records_read = len(state.records)
    else:
        mode, records_read = "incremental", unification_state.apply_changes(deps, state, changes)
    records, tokens = _unify_input(state, sources)
    previous = {ref: state.members[(ref.source, token)] for ref, token in tokens.items()
                if (ref.source, token) in state.members}
    result = unify(records, ruleset, previous)
    unification_state.mark_dirty(deps, t)
    written, deleted = _store_result(deps, result, tokens, state)
    possible = suggest(result.profiles, {MemberRef(r.source, r.record_id): r.attributes for r in records}, ruleset)
    profile_store.replace_suggestions(deps.dynamodb, t, deps.tenant, {s.profiles: s.reason for s in possible})
    state.sources = unification_state.registered(sources)
    unification_state.save(deps, t, state, sweep=mode == "full")
    store.forget_changes(deps.dynamodb, deps.tables, changes)
    run.update(status="completed", finished_at=deps.now(), duration_ms=int((time.monotonic() - started) * 1000),
               mode=mode,
               counts={**{k: result.counts.get(k, 0) for k in ("records", "profiles", "merged", "split", "new",
                                                              "unchanged")},
                       "records_read": records_read, "profiles_written": written, "profiles_deleted": deleted,
                       "suggestions": len(possible)})
    profile_store.put_run(deps.dynamodb, t, deps.tenant, run)
    logger.info("unification run finished", extra={"run_id": run_id, "mode": mode, **run["counts"]})
    observability.run_finished(mode, run["duration_ms"], run["counts"])
    return run


def _unify_input(state: unification_state.State,
                 sources: list[dict]) -> tuple[list[UnifyRecord], dict[MemberRef, str]]:
    """The state's records of the registered `sources`, with each source's current importance, and their tokens.
    A removed source's records wait for their purge outside every profile."""
    importance = {s["name"]: s["importance"] for s in sources}
    records, tokens = [], {}
    for (source, token), (record_id, ingested_at, attributes) in state.records.items():
        if source in importance:
            tokens[MemberRef(source, record_id)] = token
            records.append(UnifyRecord(source, record_id, importance[source], ingested_at, attributes))
    return records, tokens


def _store_result(deps: Deps, result, tokens: dict[MemberRef, str], state: unification_state.State) -> tuple[int, int]:
    """Writes the profiles whose sealed content changed, deletes those gone and moves member-map entries; the
    state's members and profiles become what is now stored."""
    t = profile_tables(deps)
    links = defaultdict(list)
    profile_of = {m: p.id for p in result.profiles for m in p.members}
    for edge in result.edges:
        links[profile_of[edge.a]].append(edge)
    stored = state.profiles
    pk = profile_store.profiles_pk(deps.tenant)
    sealed, now_stored = [], {}
    for profile in result.profiles:
        # A run knows only the IDs its members had last time; earlier history is carried forward.
        earlier = stored[profile.id].previous_ids if profile.id in stored else ()
        history = sorted(set(profile.previous_ids) | set(earlier))
        document = {"id": profile.id, "attributes": profile.attributes, "previous_ids": history,
                    "members": [{"source": m.source, "record_id": m.record_id} for m in profile.members],
                    "links": explain(profile, links[profile.id])["links"]}
        digest = deps.keyring.blind_index("profile", json.dumps(document, sort_keys=True))
        if profile.id in stored and hmac.compare_digest(stored[profile.id].digest, digest):
            now_stored[profile.id] = stored[profile.id]
            continue
        item, key_item = vault.seal_document(deps.keyring, PROFILES, pk, profile_store.profile_sk(profile.id),
                                             document)
        item.update(digest={"S": digest}, member_count={"N": str(len(profile.members))},
                    updated_at={"S": deps.now()})
        if history:
            item["previous_ids"] = {"SS": history}
        sealed.append((item, key_item))
        now_stored[profile.id] = profile_store.StoredProfile(digest, item["kid"]["S"], tuple(history))
    profile_store.write_profiles(deps.dynamodb, t, deps.tenant, sealed, stored)
    gone = {pid: s for pid, s in stored.items() if pid not in now_stored}
    profile_store.delete_profiles(deps.dynamodb, t, deps.tenant, gone)
    new_members = {(m.source, tokens[m]): pid for m, pid in profile_of.items()}
    changed = {k: v for k, v in new_members.items() if state.members.get(k) != v}
    profile_store.write_member_map(deps.dynamodb, t, deps.tenant, changed,
                                   sorted(set(state.members) - set(new_members)))
    state.members, state.profiles = new_members, now_stored
    return len(sealed), len(gone)
