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
from profilevault.storage.sealed import IndexRef
from profilevault.wiring import Deps


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


def identifier_refs(deps: Deps, subject: Subject) -> list[IndexRef]:
    """The blind references of the subject's identifiers (already normalised)."""
    return [IndexRef(a, deps.keyring.blind_index(a, value)) for a in IDENTIFIERS if (value := getattr(subject, a))]


def ref_text(ref: IndexRef) -> str:
    return f"{ref.attribute}#{ref.digest}"


def locate_subject(deps: Deps, subject: Subject, profile_ids: list[str] | None = None) -> Located:
    refs = identifier_refs(deps, subject)
    hits: set[tuple[str, str]] = set()
    for ref in refs:
        hits.update(deps.records.find(ref))
    if subject.source_record is not None:
        source = subject.source_record.source
        token = vault.record_token(deps.keyring, source, subject.source_record.record_id)
        if deps.records.refs(source, [token]):
            hits.add((source, token))
    owner = deps.profiles.profiles_of(sorted(hits))
    profiles: dict[str, dict | None] = {pid: _open_profile(deps, pid) for pid in set(owner.values())}
    if subject.profile_id and subject.profile_id not in profiles:
        profiles[subject.profile_id] = _open_profile(deps, subject.profile_id)
    if profile_ids is not None:
        profiles = {pid: profiles.get(pid) or _open_profile(deps, pid) for pid in set(profile_ids)}
    opened = {pid: p for pid, p in profiles.items() if p is not None}
    record_ids: dict[tuple[str, str], str | None] = {}
    for profile in opened.values():
        for member in profile["members"]:
            token = vault.record_token(deps.keyring, member["source"], member["record_id"])
            record_ids[(member["source"], token)] = member["record_id"]
    for hit in hits:
        if hit not in owner or owner[hit] in opened:
            record_ids.setdefault(hit, None)
    records, held_refs = _existing(deps, record_ids)
    return Located(profile_ids=tuple(sorted(opened)), records=tuple(records),
                   blind_refs=tuple(sorted({ref_text(r) for r in refs} | held_refs)))


def _open_profile(deps: Deps, profile_id: str) -> dict | None:
    sealed = deps.profiles.get(profile_id)
    return vault.open_document(deps.keyring, sealed) if sealed else None


def _existing(deps: Deps, record_ids: dict[tuple[str, str], str | None]) -> tuple[list[LocatedRecord], set[str]]:
    """The records that are still stored (a profile may name one deleted since the last run), each with its record
    ID (opened where the profile did not say it), and the blind references they hold."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, token in record_ids:
        by_source[source].append(token)
    located: list[LocatedRecord] = []
    held_refs: set[str] = set()
    for source, tokens in sorted(by_source.items()):
        stored = deps.records.refs(source, sorted(tokens))
        unknown = [t for t in stored if record_ids[(source, t)] is None]
        opened = {record.token: vault.open_record(deps.keyring, record).record_id
                  for record in deps.records.read(source, unknown)}
        for token in sorted(stored):
            record_id = record_ids[(source, token)] or opened.get(token)
            if record_id is None:
                continue  # its key is gone (shredded a moment ago): nothing of it is readable
            located.append(LocatedRecord(source, token, record_id))
            held_refs.update(ref_text(r) for r in stored[token].index_refs)
    return located, held_refs
