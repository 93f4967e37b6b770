"""Reading the audit trail: newest first (descending seq), filtered by time, action or request, paged by seq."""
import re
from datetime import UTC, date, datetime

from pydantic import BaseModel

from profilevault.api import cursors
from profilevault.errors import InvalidInput
from profilevault.wiring import Deps

# A request that filters for something rare stops after this many entries and hands back a cursor, so one call
# never reads an unbounded part of the chain.
MAX_ENTRIES_READ = 5000
_ACTION = re.compile(r"[a-z][a-z_.]{0,79}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AuditEntryView(BaseModel):
    """One entry of the chain as `GET /v1/audit` shows it (surrogate IDs and counts only)."""

    seq: int
    at: str
    actor: str  # a staff pseudonym (stf_...) or system:<name>
    role: str
    action: str
    target: dict[str, str]
    counts: dict[str, int]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryView]
    next_cursor: str | None


def list_entries(deps: Deps, *, start: str | None = None, end: str | None = None, action: str | None = None,
                 request_id: str | None = None, limit: int = 100, cursor: str | None = None) -> AuditPage:
    """Entries with `start <= at < end`, of one action, naming one request, newest first. `next_cursor` continues
    below the last entry read (null when the chain, or the time range, is exhausted)."""
    if action is not None and not _ACTION.fullmatch(action):
        raise InvalidInput("action: not an audit action code")
    if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
        raise InvalidInput("request_id: not a request ID")
    start_at, end_at = _instant(start, "from"), _instant(end, "to")
    before = int(cursors.decode(cursor, cursors.AUDIT_SEQ)) if cursor else None
    items: list[AuditEntryView] = []
    read = 0
    for entry in deps.audit.entries(newest_first=True, before=before, page_size=min(limit * 2, 500)):
        read += 1
        if start_at and entry["at"] < start_at:  # `at` never decreases along the chain: nothing older matches
            return AuditPage(items=items, next_cursor=None)
        if ((end_at is None or entry["at"] < end_at) and (action is None or entry["action"] == action)
                and (request_id is None or entry["target"].get("request_id") == request_id)):
            items.append(AuditEntryView.model_validate(entry))
        if len(items) == limit or read == MAX_ENTRIES_READ:
            more = entry["position"] > 1
            return AuditPage(items=items, next_cursor=cursors.encode(str(entry["position"])) if more else None)
    return AuditPage(items=items, next_cursor=None)


def _instant(value: str | None, name: str) -> str | None:
    """An ISO 8601 date or date-time (without a zone: UTC), spelled the way entries spell `at`."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if "T" in value else datetime.combine(date.fromisoformat(value),
                                                                                     datetime.min.time())
    except ValueError:
        raise InvalidInput(f"{name}: not an ISO 8601 date or date-time") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")
