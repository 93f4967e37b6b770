"""Checking the audit chain, and anchoring its head in write-once objects.

verify() reads the whole chain in seq order and recomputes it: every entry must sit at the seq its key names, follow
its predecessor's hash, hash to what it says, and not go back in time; the head must name the last entry; and every
anchor in the Object Lock bucket must match the entry at its seq. The first entry where any of this fails is named.
A chain someone rewrote consistently (hashes recomputed) passes the first checks but not the anchors written
before the rewrite, which nobody can delete or change before their retention ends."""
from typing import Any

from pydantic import BaseModel

from profilevault.audit.trail import GENESIS_HASH, entry_hash
from profilevault.observability import logger
from profilevault.storage.audit import ChainHead
from profilevault.wiring import Deps


class ChainPoint(BaseModel):
    seq: int
    hash: str
    at: str


class AnchorPoint(BaseModel):
    seq: int
    hash: str


class Anchors(BaseModel):
    count: int
    latest: AnchorPoint | None


class Break(BaseModel):
    seq: int
    reason: str


class Verification(BaseModel):
    """What `GET /v1/audit/verify` answers: the chain holds, or the first seq where it does not, and why."""

    valid: bool
    entries: int
    head: ChainPoint | None  # the last entry read (None for an empty chain)
    anchors: Anchors
    first_broken: Break | None


def verify(deps: Deps) -> Verification:
    head = deps.audit.head()  # read first: entries appended meanwhile only take the chain past it
    anchors = sorted(deps.anchors.all(), key=lambda a: a.seq)
    pending = list(anchors)  # anchors still to compare, in seq order
    broken: list[tuple[int, str]] = []
    previous = ChainHead(seq=0, hash=GENESIS_HASH, at="")
    count = 0
    for entry in deps.audit.entries():
        count += 1
        position = entry["position"]
        if position != previous.seq + 1:
            broken.append((previous.seq + 1, f"missing: the chain skips from seq {previous.seq} to {position}"))
        problem = _entry_problem(entry, previous)
        if problem:
            broken.append((position, problem))
        while pending and pending[0].seq <= position:
            anchor = pending.pop(0)
            if anchor.seq < position:
                broken.append((anchor.seq, "missing: an anchor names this seq"))
            elif anchor.hash != entry.get("hash"):
                broken.append((position, "differs from the anchored hash"))
        if head is not None and position == head.seq and head.hash != entry.get("hash"):
            broken.append((position, "differs from the hash the chain head names"))
        previous = ChainHead(seq=position, hash=str(entry.get("hash")), at=str(entry.get("at", "")))
    broken += [(a.seq, "missing: an anchor names this seq") for a in pending[:1]]
    # A head behind the last entry is an append interrupted before it moved the head (the next append moves it);
    # a head beyond it means entries were deleted from the end.
    if head is not None and head.seq > previous.seq:
        broken.append((previous.seq + 1, f"missing: the chain head names seq {head.seq}"))
    first = min(broken) if broken else None
    if first:
        logger.warning("audit chain broken", extra={"seq": first[0], "reason": first[1]})
    return Verification(
        valid=first is None, entries=count,
        head=ChainPoint(seq=previous.seq, hash=previous.hash, at=previous.at) if count else None,
        anchors=Anchors(count=len(anchors),
                        latest=AnchorPoint(seq=anchors[-1].seq, hash=anchors[-1].hash) if anchors else None),
        first_broken=Break(seq=first[0], reason=first[1]) if first else None)


def _entry_problem(entry: dict[str, Any], previous: ChainHead) -> str | None:
    if entry.get("seq") != entry["position"]:
        return f"out of place: the entry stored at this seq says seq {entry.get('seq')}"
    try:
        recomputed = entry_hash(entry)
    except KeyError as missing:
        return f"altered: field {missing} is missing"
    except TypeError:  # a value no entry holds (a fractional number, a set, bytes)
        return "altered: a field holds a value of another type"
    if recomputed != entry.get("hash"):
        return "altered: the entry does not hash to its stored hash"
    if entry["prev_hash"] != previous.hash:
        return "does not follow its predecessor (prev_hash differs)"
    if entry["at"] < previous.at:
        return "out of order: earlier than its predecessor"
    return None


def anchor_head(deps: Deps) -> dict[str, Any] | None:
    """Copies the chain's head to a write-once object, unless it is anchored already (nothing appended since)."""
    head = deps.audit.head()
    if head is None:
        return None
    at = deps.now()
    anchored = {"seq": head.seq, "hash": head.hash, "at": at}
    if any(a.hash == head.hash for a in deps.anchors.at_seq(head.seq)):
        logger.info("audit head already anchored", extra={"seq": head.seq})
        return {**anchored, "written": False}
    key = deps.anchors.put(head.seq, head.hash, at)
    logger.info("audit head anchored", extra={"seq": head.seq, "key": key})
    return {**anchored, "written": True}
