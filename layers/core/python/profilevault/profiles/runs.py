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
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.domain.ingestions import HeldSnapshot
from profilevault.domain.runs import FINAL, Run, RunCounts
from profilevault.domain.sources import Source
from profilevault.errors import Conflict, NotFound
from profilevault.keys import vault
from profilevault.observability import capture_method, logger
from profilevault.profiles import rulesets
from profilevault.profiles import state as unification_state
from profilevault.storage.profiles import SealedProfile, StoredProfile
from profilevault.unification import MemberRef, UnifyRecord, explain, suggest, unify
from profilevault.unification.engine import UnificationResult
from profilevault.wiring import Deps

# What the audit trail calls the end of each kind of run (one entry per run, never per record).
_COMPLETED = {"unify": "unification.completed", "refresh": "refresh.completed", "purge_source": "source.purged"}
_FAILED = {"unify": "unification.failed", "refresh": "refresh.failed", "purge_source": "source.purge_failed"}
RUNNER = Actor.system("refresh-worker")


def queue_run(deps: Deps, trigger: str, actor: Actor) -> Run:
    """A full run: every record read again from DynamoDB, the saved state rebuilt."""
    run = jobs.queue_job(deps, "unify", trigger, mode="full")
    trail.record(deps, "unification.queued", actor, {"run_id": run.id})
    return run


def queue_run_after_ingestion(deps: Deps, ingestion_id: str) -> None:
    """Files tend to arrive in bursts: the run waits a few seconds, and a run whose successor is already queued
    leaves the work to it (see run_unification)."""
    jobs.queue_job(deps, "unify", "ingestion", delay_seconds=deps.ingestion_batch_window_seconds)


def get_run(deps: Deps, run_id: str) -> Run:
    run = deps.runs.get(run_id)
    if run is None:
        raise NotFound(f"no unification run {run_id}")
    return run


def list_runs(deps: Deps, limit: int, after: str | None) -> tuple[list[Run], str | None]:
    """Runs, refreshes and purges, newest first; -> a page and the position after it (None at the end)."""
    return deps.runs.page(limit, after)


def advance(deps: Deps, run: Run, **changes: object) -> Run | None:
    """The run with `changes` (a new status among them), stored only if its stored status may precede the new one
    (`domain.runs.MAY_FOLLOW`). -> None when it may not: another delivery of its job got there first."""
    moved = run.model_copy(update=changes)
    try:
        deps.runs.save(moved)
    except Conflict:
        logger.info("run status not changed: it moved on meanwhile", extra={"run_id": run.id,
                                                                            "status": moved.status})
        return None
    return moved


def mark_run_failed(deps: Deps, run_id: str, reason: str) -> None:
    """A run whose job is about to land in the dead-letter queue says so, instead of staying 'running'."""
    run = deps.runs.get(run_id)
    if run is None:
        logger.warning("no run to mark failed", extra={"run_id": run_id})
        return
    trail.record(deps, _FAILED[run.type], RUNNER, _run_target(run))
    advance(deps, run, status="failed", reason=reason, finished_at=deps.now())


def _run_target(run: Run) -> dict[str, str]:
    return {"run_id": run.id, **({"source": run.source} if run.source else {})}


def read_all(deps: Deps, ruleset: str, sources: list[Source]) -> unification_state.State:
    """The state rebuilt from DynamoDB: every record of the registered `sources`, opened, the member map and the
    stored profiles."""
    records = {}
    for source in sources:
        for record in deps.records.all(source.name):
            records[(source.name, record.token)] = unification_state.opened(vault.open_record(deps.keyring, record))
    return unification_state.State(ruleset, unification_state.registered(sources), records, deps.profiles.members(),
                                   deps.profiles.stored())


@capture_method
def run_unification(deps: Deps, run_id: str, full: bool = False, records_deleted: int | None = None,
                    held_snapshots: list[HeldSnapshot] | None = None) -> Run | None:
    """Incremental unless asked for a full run (or the saved state cannot be used): the journaled changes are
    applied to the state of the last run, the clusters recomputed in memory and only what changed written.
    `records_deleted` (a refresh's or a purge's) goes into the run's counts, `held_snapshots` (a refresh's) into the
    run and its count into the counts. -> the run as stored, None when there is no such run."""
    run = deps.runs.get(run_id)
    if run is None:
        logger.warning("no such run; its job is dropped", extra={"run_id": run_id})
        return None
    if run.status in FINAL:
        return run
    if run.trigger == "ingestion" and deps.runs.newer_queued(run):
        return advance(deps, run, status="superseded", finished_at=deps.now()) or deps.runs.get(run_id)
    started = time.monotonic()
    running = advance(deps, run, status="running", started_at=deps.now())
    if running is None:
        return deps.runs.get(run_id)
    ruleset = rulesets.get_ruleset(deps)
    digest = unification_state.ruleset_digest(deps, ruleset)
    changes = deps.changes.read()  # before reading: later ones stay
    sources = deps.sources.list()
    state = None if full or run.mode == "full" else unification_state.load(
        deps, digest, unification_state.registered(sources))
    if state is None:
        state, mode = read_all(deps, digest, sources), "full"
        records_read = len(state.records)
    else:
        mode, records_read = "incremental", unification_state.apply_changes(deps, state, changes)
    records, tokens = _unify_input(state, sources)
    previous = {ref: state.members[(ref.source, token)] for ref, token in tokens.items()
                if (ref.source, token) in state.members}
    result = unify(records, ruleset, previous)
    unification_state.mark_dirty(deps)
    written, deleted = _store_result(deps, result, tokens, state)
    possible = suggest(result.profiles, {MemberRef(r.source, r.record_id): r.attributes for r in records}, ruleset)
    deps.profiles.replace_suggestions({s.profiles: s.reason for s in possible})
    state.sources = unification_state.registered(sources)
    unification_state.save(deps, state, mode == "full")
    deps.changes.forget(changes)
    counts = RunCounts(**{k: result.counts.get(k, 0) for k in ("records", "profiles", "merged", "split", "new",
                                                               "unchanged")},
                       records_read=records_read, profiles_written=written, profiles_deleted=deleted,
                       suggestions=len(possible), records_deleted=records_deleted,
                       snapshots_held=None if held_snapshots is None else len(held_snapshots))
    # Audited before the run is marked completed: if the append fails, the job is retried (and audited then).
    trail.record(deps, _COMPLETED[run.type], RUNNER, {**_run_target(run), "mode": mode},
                 counts.model_dump(exclude_none=True))
    done = advance(deps, running, status="completed", finished_at=deps.now(), mode=mode, counts=counts,
                   held_snapshots=held_snapshots, duration_ms=int((time.monotonic() - started) * 1000))
    logger.info("unification run finished", extra={"run_id": run_id, "mode": mode,
                                                   **counts.model_dump(exclude_none=True)})
    if done is not None and done.duration_ms is not None:
        observability.run_finished(mode, done.duration_ms, counts.model_dump(exclude_none=True))
    return done or deps.runs.get(run_id)


def _unify_input(state: unification_state.State,
                 sources: list[Source]) -> tuple[list[UnifyRecord], dict[MemberRef, str]]:
    """The state's records of the registered `sources`, with each source's current importance, and their tokens.
    A removed source's records wait for their purge outside every profile."""
    importance = {s.name: s.importance for s in sources}
    records, tokens = [], {}
    for (source, token), (record_id, ingested_at, attributes) in state.records.items():
        if source in importance:
            tokens[MemberRef(source, record_id)] = token
            records.append(UnifyRecord(source, record_id, importance[source], ingested_at, attributes))
    return records, tokens


def _store_result(deps: Deps, result: UnificationResult, tokens: dict[MemberRef, str],
                  state: unification_state.State) -> tuple[int, int]:
    """Writes the profiles whose sealed content changed, deletes those gone and moves member-map entries; the
    state's members and profiles become what is now stored."""
    links = defaultdict(list)
    profile_of = {m: p.id for p in result.profiles for m in p.members}
    for edge in result.edges:
        links[profile_of[edge.a]].append(edge)
    stored = state.profiles
    sealed: list[SealedProfile] = []
    now_stored: dict[str, StoredProfile] = {}
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
        document_sealed = vault.seal(deps.keyring, deps.profiles.address(profile.id), document)
        sealed.append(SealedProfile(document_sealed, digest, len(profile.members), deps.now(), tuple(history)))
        now_stored[profile.id] = StoredProfile(digest, document_sealed.kid, tuple(history))
    deps.profiles.write(sealed, stored)
    gone = {pid: s for pid, s in stored.items() if pid not in now_stored}
    deps.profiles.delete(gone)
    new_members = {(m.source, tokens[m]): pid for m, pid in profile_of.items()}
    changed = {k: v for k, v in new_members.items() if state.members.get(k) != v}
    deps.profiles.move_members(changed, sorted(set(state.members) - set(new_members)))
    state.members, state.profiles = new_members, now_stored
    return len(sealed), len(gone)
