"""What the last unification run saw, kept sealed, so that a run after an arrival opens only what changed.

Matching is global (a new record may join any profile), so a run needs every record of the tenant, the member map
and the stored profiles' digests. Reading and decrypting all of that from DynamoDB on every arrival would cost as
much as the tenant is large. Instead the run keeps it as one sealed object in the vault bucket, and the change
journal (`storage.changes`) names the records written or deleted since: a run re-reads only those, matches in
memory (100k records in seconds) and writes only the profiles that changed.

The state is a derived copy of personal data and is treated like a record: AES-GCM under its own data key (in the
keys table, wrapped by the tenant key), a new key on every save and the old one deleted, so an older copy of the
object is unreadable. It is dropped and rebuilt from DynamoDB by a full run: on request, on every refresh, when the
rule set changed, when a source was registered (again) since, when the last run stopped between writing profiles and
saving the state (the state is marked dirty first), and whenever it is missing or unreadable. Whatever else writes
profiles or the member map (erasure, rectification) must mark it dirty too."""
import json
from dataclasses import dataclass

from profilevault.domain.sources import Source
from profilevault.errors import DecryptionFailed
from profilevault.keys import vault
from profilevault.observability import logger
from profilevault.storage.changes import Change
from profilevault.storage.profiles import StoredProfile
from profilevault.unification.rules import RuleSet
from profilevault.wiring import Deps

FORMAT = 1

Ref = tuple[str, str]  # (source, record token)
Opened = tuple[str, str, dict[str, str]]  # (record id, ingested at, attributes)


@dataclass
class State:
    ruleset: str  # keyed digest of the rule set the profiles were made with
    sources: dict[str, str]  # the registered sources it covers -> their registration time
    records: dict[Ref, Opened]
    members: dict[Ref, str]  # -> profile id
    profiles: dict[str, StoredProfile]


def ruleset_digest(deps: Deps, ruleset: RuleSet) -> str:
    return deps.keyring.blind_index("ruleset", json.dumps(ruleset.model_dump(mode="json"), sort_keys=True))


def opened(record: vault.Record) -> Opened:
    """The part of an opened record that unification reads."""
    return record.record_id, record.ingested_at, record.attributes


def apply_changes(deps: Deps, state: State, changes: list[Change]) -> int:
    """Re-reads the journaled records into the state (a record gone from DynamoDB leaves it). -> records read."""
    tokens: dict[str, set[str]] = {}
    for change in changes:
        tokens.setdefault(change.source, set()).update(change.tokens)
    read = 0
    for source, changed in tokens.items():
        for token in changed:
            state.records.pop((source, token), None)
        for record in deps.records.read(source, sorted(changed)):
            state.records[(source, record.token)] = opened(vault.open_record(deps.keyring, record))
            read += 1
    return read


def registered(sources: list[Source]) -> dict[str, str]:
    return {s.name: s.created_at for s in sources}


def load(deps: Deps, ruleset: str, sources: dict[str, str]) -> State | None:
    """The saved state, or None when a full run must rebuild it: none yet, dirty, made with another rule set, not
    covering a registered source (`sources`, from `registered`), or unreadable."""
    sealed = deps.states.load()
    if sealed is None:
        return None
    try:
        document = vault.open_document(deps.keyring, sealed)
    except DecryptionFailed:
        logger.warning("unification state unreadable; a full run rebuilds it")
        return None
    if document["format"] != FORMAT or document["ruleset"] != ruleset \
            or not sources.items() <= document["sources"].items():
        return None
    return State(ruleset=document["ruleset"], sources=document["sources"],
                 records={(s, t): (rid, at, attrs) for s, t, rid, at, attrs in document["records"]},
                 members={(s, t): pid for s, t, pid in document["members"]},
                 profiles={pid: StoredProfile(digest, kid, tuple(history))
                           for pid, digest, kid, history in document["profiles"]})


def mark_dirty(deps: Deps) -> None:
    """Before a run writes profiles: until `save` replaces the pointer, the next run must be full."""
    deps.states.mark_dirty()


def save(deps: Deps, state: State, sweep: bool) -> None:
    """Sealed under a new key; with `sweep` (full runs, so at least hourly) every other state key and object goes
    too: what an interrupted save left."""
    document = {"format": FORMAT, "ruleset": state.ruleset, "sources": state.sources,
                "records": [[s, t, *value] for (s, t), value in state.records.items()],
                "members": [[s, t, pid] for (s, t), pid in state.members.items()],
                "profiles": [[pid, p.digest, p.kid, list(p.previous_ids)] for pid, p in state.profiles.items()]}
    deps.states.save(vault.seal(deps.keyring, deps.states.address(), document), sweep=sweep)
