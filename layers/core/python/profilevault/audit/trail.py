"""The audit trail: a per-tenant hash chain that every state change and every staff read of a person's data appends
to, and that anyone with the auditor role can verify.

An entry is {seq, at, actor, role, action, target, counts, prev_hash, hash}: `hash` is SHA-256 over the canonical
JSON of the other fields (prev_hash included), so editing, deleting or reordering an entry breaks the chain at that
point. `actor` is a random pseudonym per staff identity (erasable: see forget_actor) or `system:<name>`; `target`
holds surrogate IDs only (request, run, profile and ingestion IDs, source names, blind tokens), never personal data.
Appends are conditional on the seq, so concurrent appenders never fork the chain (the loser chains on from the
winner's entry). The head is copied to write-once objects (S3 Object Lock) by an hourly schedule, so a chain
rewritten consistently after an anchor no longer matches it."""
import hashlib
import json
import random
import re
import secrets
import time
from dataclasses import dataclass

from profilevault.errors import AuditUnavailable
from profilevault.observability import logger
from profilevault.storage.audit import ChainHead, Entry
from profilevault.wiring import Deps

GENESIS_HASH = "0" * 64
MAX_APPEND_ATTEMPTS = 100
SYSTEM_ROLE = "system"
STAFF_ROLES = frozenset({"admin", "privacy_officer", "analyst", "auditor"})
_ACTION = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+")
_TARGET_KEY = re.compile(r"[a-z][a-z_]{0,39}")
# Surrogate IDs, source names, blind tokens, KMS key ARNs: no spaces, no '@', short. A value that does not fit is a
# bug in the caller (and might be personal data): it is refused, not stored.
_TARGET_VALUE = re.compile(r"[A-Za-z0-9_.:/#+=-]{1,200}")
_SYSTEM_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


@dataclass(frozen=True)
class Actor:
    """Who did it: a staff member (the token's `sub` and role) or a part of the system (`Actor.system(name)`)."""

    sub: str | None  # the token's `sub` for staff; None for the system
    role: str  # "admin" | "privacy_officer" | "analyst" | "auditor" | "system"
    name: str | None = None  # a system actor's fixed name

    @classmethod
    def system(cls, name: str) -> "Actor":
        if not _SYSTEM_NAME.fullmatch(name):
            raise ValueError(f"invalid system actor name {name!r}")
        return cls(sub=None, role=SYSTEM_ROLE, name=name)


def entry_hash(entry: Entry) -> str:
    """SHA-256 over the canonical JSON (sorted keys, no whitespace, UTF-8) of every field but `hash`."""
    body = {k: entry[k] for k in ("seq", "at", "actor", "role", "action", "target", "counts", "prev_hash")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(deps: Deps, action: str, actor: Actor, target: dict[str, str] | None = None,
           counts: dict[str, int] | None = None) -> Entry:
    """Appends one entry to the tenant's chain and returns it.

    Conditional on the seq: if another appender took the next seq first, this one chains on from that entry and
    tries again (bounded, with jitter). Fails with AuditUnavailable (503) rather than leave an action unaudited
    silently; callers audit before they hand data out."""
    target, counts = dict(target or {}), dict(counts or {})
    _check(action, actor, target, counts)
    who = actor_pseudonym(deps, actor)
    previous = deps.audit.head() or ChainHead(seq=0, hash=GENESIS_HASH, at="")
    for attempt in range(MAX_APPEND_ATTEMPTS):
        # `at` never goes backwards along the chain (clocks of two containers may disagree by a few ms), so the
        # chain is ordered by time as well as by seq and a time range can be read newest first.
        at = max(deps.now(), previous.at)
        entry: Entry = {"seq": previous.seq + 1, "at": at, "actor": who, "role": actor.role, "action": action,
                        "target": target, "counts": counts, "prev_hash": previous.hash}
        entry["hash"] = entry_hash(entry)
        if deps.audit.put_entry(entry):
            deps.audit.advance_head(ChainHead(seq=previous.seq + 1, hash=entry["hash"], at=at))
            return entry
        # Jitter first, then look where the chain is: a view read before sleeping would be stale again.
        time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 4)))  # noqa: S311 (jitter, not a secret)
        previous = _moved_on(deps, previous)
    logger.warning("audit append gave up", extra={"action": action, "attempts": MAX_APPEND_ATTEMPTS})
    raise AuditUnavailable(f"the audit trail is busy: {action} could not be recorded; try again")


def _moved_on(deps: Deps, previous: ChainHead) -> ChainHead:
    """Where the chain is now that another appender took seq previous.seq + 1: usually the head says (it may be
    several entries on); a head not moved yet (that appender has not got there, or stopped) leaves the entry."""
    head = deps.audit.head()
    if head is not None and head.seq > previous.seq:
        return head
    winner = deps.audit.get_entry(previous.seq + 1)
    if winner is None:  # the entry that won is gone again (someone deleting entries): start over from the head
        return head or ChainHead(seq=0, hash=GENESIS_HASH, at="")
    return ChainHead(seq=winner["seq"], hash=winner["hash"], at=winner["at"])


def _check(action: str, actor: Actor, target: dict, counts: dict) -> None:
    """Programming errors, not bad input: every call site passes literals and surrogate IDs."""
    if not _ACTION.fullmatch(action):
        raise ValueError(f"invalid audit action {action!r}")
    if actor.role not in STAFF_ROLES | {SYSTEM_ROLE} or (actor.role == SYSTEM_ROLE) != (actor.sub is None):
        raise ValueError("an audit actor is staff with a sub, or the system without one")
    for key, value in target.items():
        if not (_TARGET_KEY.fullmatch(key) and isinstance(value, str) and _TARGET_VALUE.fullmatch(value)):
            raise ValueError(f"audit target {key!r} is not a surrogate ID")
    for key, value in counts.items():
        if not (_TARGET_KEY.fullmatch(key) and isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"audit count {key!r} is not an integer")


# ------------------------------------------------------------------ actors

def _actor_blind(deps: Deps, sub: str) -> str:
    return deps.keyring.blind_index("audit_actor", sub)


def actor_pseudonym(deps: Deps, actor: Actor) -> str:
    """The same staff identity always gets the same random pseudonym (until its mapping is erased)."""
    if actor.sub is None:
        return f"system:{actor.name}"
    blind = _actor_blind(deps, actor.sub)
    return deps.audit.pseudonym(blind) or deps.audit.claim_pseudonym(blind, "stf_" + secrets.token_hex(10),
                                                                     deps.now())


def forget_actor(deps: Deps, sub: str) -> bool:
    """Erases a staff identity's pseudonym mapping: its entries stay (and stay valid), but nothing links them to
    the person any more. The identity gets a new pseudonym if it acts again."""
    return deps.audit.forget_pseudonym(_actor_blind(deps, sub))
