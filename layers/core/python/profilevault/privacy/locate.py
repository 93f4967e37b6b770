"""Finding a data subject: every profile and every source record of theirs, through the blind indexes, the record
tokens and the member map only (never a scan, so the cost does not grow with the tenant).

`locate_subject(deps, subject, profile_ids=None) -> Located`:
- the subject's identifiers (normalised, see requests.Subject) become blind references `<attr>#<hmac>`, whose index
  entries name records; a `source_record` becomes its record token; the member map names the profiles of those
  records; a `profile_id` names a profile directly;
- the located profiles' members are the subject's records too (found by any identifier of theirs);
- with `profile_ids` (the profiles an officer confirmed), only those profiles and the matching records that belong to
  no profile are the subject's: a record in another profile is someone else's;
- `Located.records` name source, token and record ID (opened from the profile or the record); `blind_refs` are the
  subject's identifier references plus those every located record holds (what suppression needs);
- `Located.refs()` adds `profile#<id>` (and `record#<source>#<token>` when nothing else names the subject): what a
  request is indexed under.
"""
from collections import defaultdict
from dataclasses import dataclass

from profilevault.keys import vault
from profilevault.privacy.requests import IDENTIFIERS, Subject
from profilevault.storage import profile_store, store
from profilevault.storage.profile_store import PROFILES
from profilevault.wiring import Deps, profile_tables


@dataclass(frozen=True)
class LocatedRecord:
    source: str
    token: str
    record_id: str


@dataclass(frozen=True)
class Located:
    profile_ids: tuple[str, ...]
    records: tuple[LocatedRecord, ...]
    blind_refs: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.profile_ids and not self.records

    def refs(self) -> list[str]:
        """What the subject's requests are indexed under: their identifiers and profiles; their records only when
        nothing else names them (a record without identifiers, outside every profile). Bounded by the person's
        identifiers, not by their number of records."""
        named = {*self.blind_refs, *(f"profile#{p}" for p in self.profile_ids)}
        return sorted(named or {f"record#{r.source}#{r.token}" for r in self.records})

    def by_source(self) -> dict[str, list[LocatedRecord]]:
        grouped: dict[str, list[LocatedRecord]] = defaultdict(list)
        for record in self.records:
            grouped[record.source].append(record)
        return dict(sorted(grouped.items()))


def identifier_refs(deps: Deps, subject: Subject) -> list[str]:
    """`<attr>#<hmac>` of the subject's identifiers (already normalised)."""
    return [f"{a}#{deps.keyring.blind_index(a, getattr(subject, a))}" for a in IDENTIFIERS if getattr(subject, a)]


def locate_subject(deps: Deps, subject: Subject, profile_ids: list[str] | None = None) -> Located:
    refs = identifier_refs(deps, subject)
    hits: set[tuple[str, str]] = set()
    for ref in refs:
        hits.update(store.find_index_entries(deps.dynamodb, deps.tables, deps.tenant, ref))
    if subject.source_record is not None:
        source = subject.source_record.source
        token = vault.record_token(deps.keyring, source, subject.source_record.record_id)
        if store.stored_refs(deps.dynamodb, deps.tables, store.records_pk(deps.tenant, source), [token]):
            hits.add((source, token))
    t = profile_tables(deps)
    owner = profile_store.profiles_of_members(deps.dynamodb, t, deps.tenant, sorted(hits))
    profiles = {pid: _open_profile(deps, pid) for pid in set(owner.values())}
    if subject.profile_id and subject.profile_id not in profiles:
        profiles[subject.profile_id] = _open_profile(deps, subject.profile_id)
    profiles = {pid: p for pid, p in profiles.items() if p is not None}
    if profile_ids is not None:
        confirmed = {pid: profiles.get(pid) or _open_profile(deps, pid) for pid in set(profile_ids)}
        profiles = {pid: p for pid, p in confirmed.items() if p is not None}
    record_ids: dict[tuple[str, str], str | None] = {}
    for profile in profiles.values():
        for member in profile["members"]:
            token = vault.record_token(deps.keyring, member["source"], member["record_id"])
            record_ids[(member["source"], token)] = member["record_id"]
    for hit in hits:
        if hit not in owner or owner[hit] in profiles:
            record_ids.setdefault(hit, None)
    records, held_refs = _existing(deps, record_ids)
    return Located(profile_ids=tuple(sorted(profiles)), records=tuple(records),
                   blind_refs=tuple(sorted(set(refs) | held_refs)))


def _open_profile(deps: Deps, profile_id: str) -> dict | None:
    items = profile_store.get_profile_items(deps.dynamodb, profile_tables(deps), deps.tenant, profile_id)
    return vault.open_document(deps.keyring, PROFILES, *items) if items else None


def _existing(deps: Deps, record_ids: dict[tuple[str, str], str | None]) -> tuple[list[LocatedRecord], set[str]]:
    """The records that are still stored (a profile may name one deleted since the last run), each with its record
    ID (opened where the profile did not say it), and the blind references they hold."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, token in record_ids:
        by_source[source].append(token)
    located, held_refs = [], set()
    for source, tokens in sorted(by_source.items()):
        stored = store.stored_refs(deps.dynamodb, deps.tables, store.records_pk(deps.tenant, source), sorted(tokens))
        unknown = [t for t in stored if record_ids[(source, t)] is None]
        opened = {item["sk"]["S"][4:]: vault.open_record(deps.keyring, item, key_item)["record_id"]
                  for item, key_item in store.read_records(deps.dynamodb, deps.tables, deps.tenant, source, unknown)}
        for token in sorted(stored):
            record_id = record_ids[(source, token)] or opened.get(token)
            if record_id is None:
                continue  # its key is gone (shredded a moment ago): nothing of it is readable
            located.append(LocatedRecord(source, token, record_id))
            held_refs.update(stored[token].index_refs)
    return located, held_refs
