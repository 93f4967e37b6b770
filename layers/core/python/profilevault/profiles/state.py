"""What the last unification run saw, kept sealed, so that a run after an arrival opens only what changed.

Matching is global (a new record may join any profile), so a run needs every record of the tenant, the member map
and the stored profiles' digests. Reading and decrypting all of that from DynamoDB on every arrival would cost as
much as the tenant is large. Instead the run keeps it as one sealed object in the vault bucket, and the change
journal (`store.journal_changes`) names the records written or deleted since: a run re-reads only those, matches in
memory (100k records in seconds) and writes only the profiles that changed.

The state is a derived copy of personal data and is treated like a record: AES-GCM under its own data key (in the
keys table, wrapped by the tenant key), a new key on every save and the old one deleted, so an older copy of the
object is unreadable. It is dropped and rebuilt from DynamoDB by a full run: on request, on every refresh, when the
rule set changed, when a source was registered (again) since, when the last run stopped between writing profiles and
saving the state (the state is marked dirty first), and whenever it is missing or unreadable. Whatever else writes
profiles or the member map (erasure, rectification) must mark it dirty too."""
import json
from dataclasses import dataclass

from profilevault.errors import DecryptionFailed
from profilevault.keys import vault
from profilevault.observability import logger
from profilevault.storage import objects, profile_store, store
from profilevault.storage.profile_store import ProfileTables, StoredProfile
from profilevault.unification.rules import RuleSet
from profilevault.wiring import Deps

STATE = "unification_state"  # the logical name bound into the state's ciphertext
FORMAT = 1

Ref = tuple[str, str]  # (source, record token)


@dataclass
class State:
    ruleset: str  # keyed digest of the rule set the profiles were made with
    sources: dict[str, str]  # the registered sources it covers -> their registration time
    records: dict[Ref, tuple[str, str, dict[str, str]]]  # -> (record id, ingested at, attributes)
    members: dict[Ref, str]  # -> profile id
    profiles: dict[str, StoredProfile]


def ruleset_digest(deps: Deps, ruleset: RuleSet) -> str:
    return deps.keyring.blind_index("ruleset", json.dumps(ruleset.model_dump(mode="json"), sort_keys=True))


def opened(record: dict) -> tuple[str, str, dict[str, str]]:
    """The part of an opened record (vault.open_record) that unification reads."""
    return record["record_id"], record["ingested_at"], record["attributes"]


def apply_changes(deps: Deps, state: State, changes: list[store.Change]) -> int:
    """Re-reads the journaled records into the state (a record gone from DynamoDB leaves it). -> records read."""
    tokens: dict[str, set[str]] = {}
    for change in changes:
        tokens.setdefault(change.source, set()).update(change.tokens)
    read = 0
    for source, changed in tokens.items():
        for token in changed:
            state.records.pop((source, token), None)
        for item, key_item in store.read_records(deps.dynamodb, deps.tables, deps.tenant, source, sorted(changed)):
            state.records[(source, item["sk"]["S"][len("REC#"):])] = opened(vault.open_record(deps.keyring, item,
                                                                                              key_item))
            read += 1
    return read


def registered(sources: list[dict]) -> dict[str, str]:
    return {s["name"]: s["created_at"] for s in sources}


def load(deps: Deps, t: ProfileTables, ruleset: str, sources: dict[str, str]) -> State | None:
    """The saved state, or None when a full run must rebuild it: none yet, dirty, made with another rule set, not
    covering a registered source (`sources`, from `registered`), or unreadable."""
    items = profile_store.get_state_items(deps.dynamodb, t, deps.tenant)
    if items is None or "dirty" in items[0]:
        return None
    pointer, key_item = items
    payload = objects.get_blob(deps.s3, deps.vault_bucket, pointer["object"]["S"])
    if payload is None:
        return None
    try:
        document = vault.open_document(deps.keyring, STATE, {**pointer, "payload": {"B": payload}}, key_item)
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


def mark_dirty(deps: Deps, t: ProfileTables) -> None:
    """Before a run writes profiles: until `save` replaces the pointer, the next run must be full."""
    profile_store.mark_state_dirty(deps.dynamodb, t, deps.tenant)


def save(deps: Deps, t: ProfileTables, state: State, sweep: bool) -> None:
    """Object first, then the pointer that names it (its key before it), then the replaced key and object. With
    `sweep` (full runs, so at least hourly) every other state key and object goes too: what an interrupted save left."""
    document = {"format": FORMAT, "ruleset": state.ruleset, "sources": state.sources,
                "records": [[s, t, *value] for (s, t), value in state.records.items()],
                "members": [[s, t, pid] for (s, t), pid in state.members.items()],
                "profiles": [[pid, p.digest, p.kid, list(p.previous_ids)] for pid, p in state.profiles.items()]}
    key = profile_store.state_key(deps.tenant)
    item, key_item = vault.seal_document(deps.keyring, STATE, key["pk"]["S"], key["sk"]["S"], document)
    name = f"unification/{deps.tenant}/state-{item['kid']['S']}"
    objects.put_blob(deps.s3, deps.vault_bucket, name, item.pop("payload")["B"])
    item["object"] = {"S": name}
    before = profile_store.replace_sealed(deps.dynamodb, t, item, key_item)
    if not sweep:
        if before:
            objects.delete_objects(deps.s3, deps.vault_bucket, [before["object"]["S"]])
        return
    profile_store.delete_other_keys(deps.dynamodb, t, key_item)
    prefix = f"unification/{deps.tenant}/"
    objects.delete_objects(deps.s3, deps.vault_bucket,
                           [k for k in objects.list_keys(deps.s3, deps.vault_bucket, prefix) if k != name])


def holds_any(deps: Deps, t: ProfileTables, refs: set[Ref]) -> bool:
    """Does the saved state (the current copy, clean or dirty) still name any of these records? For erasure's
    verification: the copy the next run would start from must not keep an erased person."""
    items = profile_store.get_state_items(deps.dynamodb, t, deps.tenant)
    if items is None:
        return False
    pointer, key_item = items
    payload = objects.get_blob(deps.s3, deps.vault_bucket, pointer["object"]["S"])
    if payload is None:
        return False
    document = vault.open_document(deps.keyring, STATE, {**pointer, "payload": {"B": payload}}, key_item)
    named = {(source, token) for source, token, *_ in document["records"]}
    named |= {(source, token) for source, token, _ in document["members"]}
    return bool(named & refs)
