"""Customer profiles: unification runs over the stored records, and reading profiles the way each role may.

A run clusters every record of the tenant with the tenant's rule set (profilevault.unification) and writes back only
what changed: profiles whose sealed content differs, profiles that disappeared, member-map entries that moved. Runs
after an ingestion or a source purge are incremental: they start from the sealed state of the last run and re-read
only the records the change journal names (see unification_state). A run on request (POST /v1/unification/runs)
and every refresh (hourly, or POST /v1/refreshes) is full: it reads every record again and rebuilds that state."""
import hmac
import json
import time
import uuid
from collections import defaultdict

from profilevault import jobs, profile_store, store, unification_state, vault
from profilevault.access import PROFILE_FULL_VIEW, PROFILE_MASKED_VIEW, Role
from profilevault.errors import Forbidden, InvalidInput, NotFound
from profilevault.normalize import normalize_attributes
from profilevault.observability import logger
from profilevault.profile_store import PROFILES, RULES, ProfileTables
from profilevault.unification import MemberRef, UnifyRecord, explain, suggest, unify
from profilevault.unification.rules import DEFAULT_RULESET, RuleSet
from profilevault.wiring import Deps

SEARCHABLE = ("email", "phone", "customer_id")


def tables(deps: Deps) -> ProfileTables:
    return ProfileTables(profiles=deps.profiles_table, keys=deps.tables.keys, control=deps.tables.control)


# ------------------------------------------------------------------ rules

def get_ruleset(deps: Deps) -> RuleSet:
    items = profile_store.get_rules_items(deps.dynamodb, tables(deps), deps.tenant)
    if items is None:
        return DEFAULT_RULESET
    return RuleSet.model_validate(vault.open_document(deps.keyring, RULES, *items)["ruleset"])


def put_ruleset(deps: Deps, ruleset: RuleSet) -> dict:
    key = profile_store.rules_key(deps.tenant)
    document = {"ruleset": ruleset.model_dump(mode="json"), "updated_at": deps.now()}
    item, key_item = vault.seal_document(deps.keyring, RULES, key["pk"]["S"], key["sk"]["S"], document)
    profile_store.replace_sealed(deps.dynamodb, tables(deps), item, key_item)
    return ruleset.model_dump(mode="json")


# ------------------------------------------------------------------ runs

def queue_job(deps: Deps, job_type: str, trigger: str, delay_seconds: int = 0, **details) -> dict:
    """Records a queued run (unification, refresh or source purge) and hands its job to the jobs queue."""
    prefix = "ref_" if job_type == "refresh" else "run_"
    run = {"id": prefix + uuid.uuid4().hex[:20], "type": job_type, "status": "queued", "trigger": trigger,
           "queued_at": deps.now(), **details}
    profile_store.put_run(deps.dynamodb, tables(deps), deps.tenant, run)
    jobs.enqueue(deps, {"type": job_type, "run_id": run["id"], **details}, delay_seconds=delay_seconds)
    return run


def queue_run(deps: Deps, trigger: str) -> dict:
    """A full run: every record read again from DynamoDB, the saved state rebuilt."""
    return queue_job(deps, "unify", trigger, mode="full")


def queue_run_after_ingestion(deps: Deps, ingestion_id: str) -> None:
    """Files tend to arrive in bursts: the run waits a few seconds, and a run whose successor is already queued
    leaves the work to it (see run_unification)."""
    queue_job(deps, "unify", "ingestion", delay_seconds=deps.ingestion_batch_window_seconds)


def get_run(deps: Deps, run_id: str) -> dict:
    run = profile_store.get_run(deps.dynamodb, tables(deps), deps.tenant, run_id)
    if run is None:
        raise NotFound(f"no unification run {run_id}")
    return run


def mark_run_failed(deps: Deps, run_id: str, reason: str) -> None:
    """A run whose job is about to land in the dead-letter queue says so, instead of staying 'running'."""
    run = profile_store.get_run(deps.dynamodb, tables(deps), deps.tenant, run_id) or {"id": run_id}
    run.update(status="failed", reason=reason, finished_at=deps.now())
    profile_store.put_run(deps.dynamodb, tables(deps), deps.tenant, run)


def read_all(deps: Deps, ruleset: str, sources: list[dict]) -> unification_state.State:
    """The state rebuilt from DynamoDB: every record of the registered `sources`, opened, the member map and the
    stored profiles."""
    records = {}
    for source in sources:
        for record_item, key_item in store.iter_record_items(deps.dynamodb, deps.tables, deps.tenant, source["name"]):
            token = record_item["sk"]["S"][len("REC#"):]
            records[(source["name"], token)] = unification_state.opened(
                vault.open_record(deps.keyring, record_item, key_item))
    t = tables(deps)
    return unification_state.State(ruleset, unification_state.registered(sources), records,
                                   profile_store.read_member_map(deps.dynamodb, t, deps.tenant),
                                   profile_store.stored_profiles(deps.dynamodb, t, deps.tenant))


def run_unification(deps: Deps, run_id: str, full: bool = False) -> dict:
    """Incremental unless asked for a full run (or the saved state cannot be used): the journaled changes are
    applied to the state of the last run, the clusters recomputed in memory and only what changed written."""
    t = tables(deps)
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
    ruleset = get_ruleset(deps)
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
    t = tables(deps)
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


# ------------------------------------------------------------------ reading

def list_suggestions(deps: Deps, limit: int, cursor: str | None) -> dict:
    """Possible matches the rules do not make (see unification.suggestions), from the last run."""
    items, next_cursor = profile_store.page_suggestions(deps.dynamodb, tables(deps), deps.tenant, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


def _view(role: Role) -> None:
    if role not in PROFILE_FULL_VIEW | PROFILE_MASKED_VIEW:
        raise Forbidden(f"role {role.value!r} may not read profiles")


def shown(profile: dict, role: Role) -> dict:
    out = {k: profile[k] for k in ("id", "attributes", "previous_ids", "members")}
    if role in PROFILE_MASKED_VIEW:
        out["attributes"] = {k: mask(k, v) for k, v in profile["attributes"].items()}
        out["members"] = [{"source": m["source"], "record_id": mask("record_id", m["record_id"])}
                          for m in profile["members"]]
        out["masked"] = True
    return out


def mask(attribute: str, value: str) -> str:
    """What an analyst sees: enough shape to work with, never the value."""
    if attribute == "email" and "@" in value:
        local, domain = value.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if attribute == "phone":
        return value[:3] + "*" * max(len(value) - 5, 3) + value[-2:]
    if attribute == "birth_date":
        return value[:4] + "-**-**"
    if attribute in ("country", "region"):
        return value
    if attribute == "postal_code":
        return value[:2] + "***"
    return (value[:1] + "***") if value else value


def list_profiles(deps: Deps, role: Role, limit: int, cursor: str | None) -> dict:
    _view(role)
    pairs, next_cursor = profile_store.page_profile_items(deps.dynamodb, tables(deps), deps.tenant, limit, cursor)
    return {"items": [shown(vault.open_document(deps.keyring, PROFILES, *p), role) for p in pairs],
            "next_cursor": next_cursor}


def _open_profile(deps: Deps, profile_id: str) -> dict:
    items = profile_store.get_profile_items(deps.dynamodb, tables(deps), deps.tenant, profile_id)
    if items is None:
        raise NotFound(f"no profile {profile_id}")
    return vault.open_document(deps.keyring, PROFILES, *items)


def get_profile(deps: Deps, role: Role, profile_id: str) -> dict:
    _view(role)
    return shown(_open_profile(deps, profile_id), role)


def explain_profile(deps: Deps, role: Role, profile_id: str) -> dict:
    _view(role)
    profile = _open_profile(deps, profile_id)
    if role in PROFILE_MASKED_VIEW:
        hidden = {m["record_id"]: mask("record_id", m["record_id"]) for m in profile["members"]}
        for link in profile["links"]:
            for end in ("a", "b"):
                link[end] = {**link[end], "record_id": hidden.get(link[end]["record_id"], "***")}
    return {"profile_id": profile["id"], "members": shown(profile, role)["members"], "links": profile["links"]}


def search_profiles(deps: Deps, role: Role, query: dict[str, str]) -> dict:
    """Finds profiles by identifier through the blind indexes: no plaintext index exists to search."""
    _view(role)
    (attribute, value), = query.items()
    normalised, warnings = normalize_attributes({attribute: value})  # exactly as ingestion stored it
    if attribute not in normalised:
        raise InvalidInput(f"{attribute}: {warnings[0].reason if warnings else 'empty'}")
    ref = f"{attribute}#{deps.keyring.blind_index(attribute, normalised[attribute])}"
    members = store.find_index_entries(deps.dynamodb, deps.tables, deps.tenant, ref)
    profile_ids = profile_store.profile_ids_of_members(deps.dynamodb, tables(deps), deps.tenant, members)
    return {"items": [get_profile(deps, role, pid) for pid in profile_ids]}
