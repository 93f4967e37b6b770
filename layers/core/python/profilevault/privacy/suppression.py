"""Suppression: what an erasure removed stays out. Each erased person leaves an entry per blind identifier and per
source-record token; a later drop of a row with one of them is rejected with the reason `suppressed` (counted, not
stored) until the organisation deletes the row at the origin, or an admin lifts the entry.

Races with a writer: the erasure writes its entries, then moves the list's generation. A write batch reads the
generation, looks its rows up (one batched read) and writes, then reads the generation again: if it moved, it looks
again and deletes what it has just written of a now suppressed row. So a row is either refused,
deleted by the writer, or written before the erasure locates (and deletes) it."""
from dataclasses import dataclass, field

from pydantic import BaseModel

from profilevault.api import cursors
from profilevault.audit import trail
from profilevault.domain.shown import Shown
from profilevault.errors import NotFound
from profilevault.storage.sealed import SealedRecord
from profilevault.storage.suppressions import Suppression, record_ref
from profilevault.wiring import Deps

REASON = "suppressed"


@dataclass
class Screened:
    """A write batch after the look-up: the rows to write, how many were refused, and the generation read."""

    source: str
    kept: list[SealedRecord]
    suppressed: int
    generation: int
    refs: dict[str, set[str]] = field(default_factory=dict)  # token -> its refs


def refs_of(source: str, sealed: SealedRecord) -> set[str]:
    """What a row is suppressed by: its record token and its blind identifiers (`<attribute>#<hmac>`)."""
    return {record_ref(source, sealed.token), *(f"{r.attribute}#{r.digest}" for r in sealed.index_refs)}


def screen(deps: Deps, source: str, batch: list[SealedRecord]) -> Screened:
    """One batched look-up for the whole write batch (not one per row)."""
    refs = {s.token: refs_of(source, s) for s in batch}
    suppressed, generation = deps.suppressions.lookup(set[str]().union(*refs.values()))
    kept = [s for s in batch if not refs[s.token] & suppressed]
    return Screened(source, kept, len(batch) - len(kept), generation, refs)


def recheck(deps: Deps, screened: Screened) -> int:
    """After the batch is written: if an erasure wrote entries meanwhile, deletes the rows they now suppress (their
    keys and index entries with them). -> the number of rows deleted again."""
    if not screened.kept or deps.suppressions.generation() == screened.generation:
        return 0
    suppressed, _ = deps.suppressions.lookup(set[str]().union(*(screened.refs[s.token] for s in screened.kept)))
    late = [s.token for s in screened.kept if screened.refs[s.token] & suppressed]
    if late:
        deps.records.delete(screened.source, late)
    return len(late)


def suppress(deps: Deps, request_id: str, blind_refs: list[str], records: list[tuple[str, str]]) -> int:
    """Writes an entry per blind identifier reference (`<attribute>#<hmac>`) and per (source, token), then moves
    the generation. -> the number of entries."""
    now = deps.now()
    entries = [Suppression(ref, request_id, now) for ref in blind_refs]
    entries += [Suppression(record_ref(source, token), request_id, now) for source, token in records]
    deps.suppressions.add(entries)
    deps.suppressions.advance_generation()
    return len({e.ref for e in entries})


class SuppressionView(Shown):
    """Blind values only: an admin sees which request put an entry, never whose it is."""

    id: str
    kind: str  # an identifier attribute (email, phone, national_id, customer_id) or "record"
    blind: str  # the keyed HMAC of the identifier, or the record's token
    source: str | None = None  # a record's source
    request_id: str
    created_at: str

    @classmethod
    def of(cls, entry: Suppression) -> "SuppressionView":
        return cls(id=entry.id, kind=entry.kind, blind=entry.blind, source=entry.source,
                   request_id=entry.request_id, created_at=entry.created_at)


class SuppressionPage(BaseModel):
    items: list[SuppressionView]
    next_cursor: str | None


def list_suppressions(deps: Deps, limit: int, cursor: str | None) -> SuppressionPage:
    after = cursors.decode(cursor, cursors.SUPPRESSION) if cursor else None
    entries, last = deps.suppressions.page(limit, after)
    return SuppressionPage(items=[SuppressionView.of(e) for e in entries],
                           next_cursor=cursors.encode(last) if last else None)


def lift(deps: Deps, actor: trail.Actor, suppression_id: str) -> SuppressionView:
    """Removes one entry (the organisation may bring that row in again). Audited first: a lift the trail could not
    record does not happen."""
    entry = deps.suppressions.get(suppression_id) if cursors.SUPPRESSION.fullmatch(suppression_id) else None
    if entry is None:
        raise NotFound(f"no suppression {suppression_id}")
    trail.record(deps, "suppression.lifted", actor, target={"suppression_id": entry.id,
                                                             "request_id": entry.request_id})
    deps.suppressions.remove(suppression_id)
    return SuppressionView.of(entry)
