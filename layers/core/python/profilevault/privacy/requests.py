"""Data-subject requests (access, portability, erasure): the request, its legal due date, its status machine.

The interface the erasure workflow builds on:
- `PrivacyRequest`: id, type, status, received_at, due_at, history [{status, at}], steps [{step, at, outcome,
  counts}], candidate_profile_ids (a subject that led to several profiles), profile_ids (the profiles confirmed to be
  the subject's), result (a dict, e.g. {"outcome": "no data held"}), failed_step and reason (of the last failure),
  extension, export. It holds no personal data: list views and logs may show it.
- The subject's identifiers, the verification and the note are sealed like records (their own data key in the keys
  table); only `open_subject(deps, request)` opens them.
- `get_request(deps, id)` -> PrivacyRequest (NotFound otherwise).
- `advance(deps, id, to_status, expect, *, actor=WORKER, **fields)` moves the status, conditional on the current status
  being `expect` (a status or a set of them), appends {status, at} to the history and sets `fields` (fields of
  PrivacyRequest), all in one conditional write; raises errors.Conflict when the request is in another status. Only
  the moves in TRANSITIONS exist: a status never goes backwards (a retry resumes a failed request). Audited.
- `record_step(deps, id, step, outcome, *, counts=None, actor=WORKER)` appends {step, at, outcome, counts}. Audited.
  `outcome` and `counts` must hold no personal data (codes and numbers).
- `forget_subject(deps, id)` deletes the sealed subject and its keys (the request stays as the record of what was
  done; its blind references stay for the subject's later requests and for suppression).

Statuses: received -> locating -> in_progress -> completed, or needs_review (several profiles: an officer confirms
which are the subject's), failed (with the step and a reason; retry resumes that step), cancelled (before
in_progress).
"""
import calendar
import json
import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.domain.normalize import normalize_attributes
from profilevault.domain.sources import check_source_name
from profilevault.errors import Conflict, InvalidInput, NotFound
from profilevault.keys import vault
from profilevault.observability import logger
from profilevault.storage.requests import ListFilter, StatusMismatch
from profilevault.wiring import Deps

RequestType = Literal["access", "portability", "erasure"]
Status = Literal["received", "locating", "needs_review", "in_progress", "completed", "failed", "cancelled"]
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"locating", "cancelled", "failed"}),
    "locating": frozenset({"needs_review", "in_progress", "completed", "failed", "cancelled"}),
    "needs_review": frozenset({"in_progress", "cancelled", "failed"}),
    "in_progress": frozenset({"completed", "failed"}),
    "failed": frozenset({"locating", "in_progress"}),  # retry: resumes the step that failed
    "completed": frozenset(),
    "cancelled": frozenset(),
}
CANCELLABLE = frozenset({"received", "locating", "needs_review"})
OPEN = frozenset(TRANSITIONS) - {"completed", "cancelled"}
IDENTIFIERS = ("email", "phone", "customer_id", "national_id")
PROFILE_ID = r"^[A-Za-z0-9_-]{1,64}$"
REQUEST_ID = r"^pr_[0-9a-f]{12}_[0-9a-f]{12}$"
WORKER = Actor.system("privacy")  # who moves a request when no officer does
# Art. 12(3) names the grounds for an extension; a code keeps free text (and personal data) out of the record.
ExtensionReason = Literal["complexity", "number_of_requests"]


# ------------------------------------------------------------------ models

class SourceRecordRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=63)
    record_id: str = Field(min_length=1, max_length=512)


class Subject(BaseModel):
    """Whom the request is about: one or more identifiers, normalised exactly as ingestion normalises them."""

    model_config = ConfigDict(extra="forbid")
    email: str | None = Field(default=None, max_length=1000)
    phone: str | None = Field(default=None, max_length=1000)
    customer_id: str | None = Field(default=None, max_length=1000)
    national_id: str | None = Field(default=None, max_length=1000)
    profile_id: str | None = Field(default=None, pattern=PROFILE_ID)
    source_record: SourceRecordRef | None = None

    @model_validator(mode="after")
    def _names_someone(self) -> "Subject":
        if not self.model_dump(exclude_none=True):
            raise ValueError("name the subject by at least one of email, phone, customer_id, national_id, "
                             "profile_id, source_record")
        return self

    def normalised(self) -> "Subject":
        """The identifiers as ingestion stores them; InvalidInput (naming the identifier, never its value)."""
        raw = {a: getattr(self, a) for a in IDENTIFIERS if getattr(self, a) is not None}
        values, warnings = normalize_attributes(raw)
        problems = [f"{w.attribute}: {w.reason}" for w in warnings]
        problems += [f"{a}: empty" for a in raw if a not in values and a not in {w.attribute for w in warnings}]
        changes: dict[str, Any] = dict(values)
        if self.source_record is not None:
            check_source_name(self.source_record.source)
            record_id = self.source_record.record_id.strip()
            if not record_id:
                problems.append("source_record.record_id: empty")
            changes["source_record"] = SourceRecordRef(source=self.source_record.source, record_id=record_id)
        if problems:
            raise InvalidInput("subject identifiers are malformed: " + "; ".join(problems))
        return self.model_copy(update=changes)


class Verification(BaseModel):
    """How the officer verified the person's identity (sealed with the subject)."""

    model_config = ConfigDict(extra="forbid")
    method: str = Field(min_length=1, max_length=200, pattern=r"\S")
    reference: str = Field(min_length=1, max_length=500, pattern=r"\S")


class NewPrivacyRequest(BaseModel):
    """Body of POST /v1/privacy-requests."""

    model_config = ConfigDict(extra="forbid")
    type: RequestType
    subject: Subject
    verification: Verification
    note: str | None = Field(default=None, max_length=2000)


class StatusChange(BaseModel):
    status: Status
    at: str


class StepDone(BaseModel):
    step: str
    at: str
    outcome: str
    counts: dict[str, int] = Field(default_factory=dict)


class Extension(BaseModel):
    months: int
    reason: ExtensionReason
    at: str


class Export(BaseModel):
    key: str  # object key in the exports bucket: exports/<request id>.zip
    bytes: int
    files: int
    created_at: str


class PrivacyRequest(BaseModel):
    id: str
    type: RequestType
    status: Status
    received_at: str
    due_at: str
    history: list[StatusChange] = Field(default_factory=list)
    steps: list[StepDone] = Field(default_factory=list)
    candidate_profile_ids: list[str] = Field(default_factory=list)
    profile_ids: list[str] = Field(default_factory=list)
    subject_refs: list[str] = Field(default_factory=list)  # blind: <attr>#<hmac>, profile#<id>, record#<s>#<token>
    result: dict[str, Any] | None = None
    failed_step: str | None = None
    reason: str | None = None
    extension: Extension | None = None
    export: Export | None = None

    def overdue(self, now: str) -> bool:
        return self.status in OPEN and self.due_at < now


# ------------------------------------------------------------------ due dates (Art. 12(3))

def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` calendar months later; a day the month lacks becomes its last (Jan 31 -> Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def due_date(received_at: str, extra_months: int = 0) -> str:
    """One calendar month after receipt, plus an extension's months, counted from receipt."""
    received = datetime.fromisoformat(received_at)
    return add_months(received, 1 + extra_months).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------ the repository and the sealed subject

def new_request_id(now: str) -> str:
    """Sortable by receipt: the hex of the receipt time in milliseconds, then randomness."""
    millis = int(datetime.fromisoformat(now).timestamp() * 1000)
    return f"pr_{millis:012x}_{uuid.uuid4().hex[:12]}"


def open_subject(deps: Deps, request: PrivacyRequest) -> Subject:
    """The request's subject (normalised). NotFound once the subject has been forgotten."""
    return Subject.model_validate(_open_sealed(deps, request.id)["subject"])


def _open_sealed(deps: Deps, request_id: str) -> dict:
    sealed = deps.requests.subject(request_id)
    if sealed is None:
        raise NotFound(f"the subject of request {request_id} is no longer held")
    return vault.open_document(deps.keyring, sealed)


def forget_subject(deps: Deps, request_id: str) -> None:
    deps.requests.forget_subject(request_id)


# ------------------------------------------------------------------ creating, reading, listing

def create_request(deps: Deps, new: NewPrivacyRequest, actor: Actor) -> PrivacyRequest:
    """Seals the subject, stores the request as `received` and queues it for locating (the queue message carries
    the request ID only). Audited: the officer who filed it, the request's ID and type."""
    subject = new.subject.normalised()
    now = deps.now()
    request = PrivacyRequest(id=new_request_id(now), type=new.type, status="received", received_at=now,
                             due_at=due_date(now), history=[StatusChange(status="received", at=now)])
    sealed = vault.seal(deps.keyring, deps.requests.subject_address(request.id), {
        "subject": subject.model_dump(exclude_none=True), "verification": new.verification.model_dump(),
        "note": new.note})
    deps.requests.create(request.model_dump(mode="json"), sealed)
    trail.record(deps, "privacy_request.received", actor, {"request_id": request.id, "type": request.type})
    enqueue(deps, request.id)
    logger.info("privacy request received", extra={"request_id": request.id, "type": request.type})
    return request


def enqueue(deps: Deps, request_id: str) -> None:
    deps.sqs.send_message(QueueUrl=deps.requests_queue_url, MessageBody=json.dumps({"request_id": request_id}))


def get_request(deps: Deps, request_id: str) -> PrivacyRequest:
    stored = deps.requests.get(request_id) if _well_formed(request_id) else None
    if stored is None:
        raise NotFound(f"no privacy request {request_id}")
    return PrivacyRequest.model_validate(stored)


def _well_formed(request_id: str) -> bool:
    return re.fullmatch(REQUEST_ID, request_id) is not None


def list_requests(deps: Deps, status: str | None, type_: str | None, overdue: bool, limit: int,
                  after: str | None) -> tuple[list[PrivacyRequest], str | None]:
    now = deps.now()
    page, last = deps.requests.page(ListFilter(status=status, type=type_, overdue_at=now if overdue else None),
                                       limit, after)
    return [PrivacyRequest.model_validate(r) for r in page], last


def requests_of_subject(deps: Deps, refs: list[str]) -> list[PrivacyRequest]:
    """The requests whose subject shares one of these blind references, oldest first."""
    found = (deps.requests.get(i) for i in deps.requests.requests_by_refs(refs))
    return [PrivacyRequest.model_validate(r) for r in found if r]


def index_subject(deps: Deps, request_id: str, refs: list[str]) -> None:
    """Remembers the subject's blind references on the request and indexes the request under them."""
    deps.requests.index_subject(request_id, refs)
    deps.requests.update(request_id, set(), {"subject_refs": sorted(set(refs))})


# ------------------------------------------------------------------ status and steps

def advance(deps: Deps, request_id: str, to_status: str, expect: set[str] | frozenset[str] | str, *,
            actor: Actor = WORKER, **fields) -> PrivacyRequest:
    """Moves the request to `to_status` if it is now in `expect`; errors.Conflict otherwise. Audited as
    `privacy_request.<to_status>` (with the failed step, the outcome and the number of profiles where given)."""
    expected = {expect} if isinstance(expect, str) else set(expect)
    if not expected or any(to_status not in TRANSITIONS[s] for s in expected):
        raise ValueError(f"no transition {sorted(expected)} -> {to_status}")
    unknown = set(fields) - set(PrivacyRequest.model_fields) - {"status", "history", "id"}
    if unknown:
        raise ValueError(f"not fields of a request: {sorted(unknown)}")
    now = deps.now()
    changes = {"status": to_status, **{k: _plain(v) for k, v in fields.items()}}
    try:
        stored = deps.requests.update(request_id, expected, changes,
                                         append={"history": [{"status": to_status, "at": now}]})
    except StatusMismatch as mismatch:
        if mismatch.current is None:
            raise NotFound(f"no privacy request {request_id}") from None
        raise Conflict(f"request {request_id} is {mismatch.current}; this needs it "
                       f"{' or '.join(sorted(expected))}") from None
    moved = PrivacyRequest.model_validate(stored)
    target = {"request_id": request_id, "from": moved.history[-2].status if len(moved.history) > 1 else "none"}
    if "failed_step" in fields:
        target["step"] = fields["failed_step"]
    if isinstance(fields.get("result"), dict) and "outcome" in fields["result"]:
        target["outcome"] = fields["result"]["outcome"].replace(" ", "-")
    counts: dict[str, int] = {k: len(fields[k]) for k in ("profile_ids", "candidate_profile_ids") if k in fields}
    trail.record(deps, f"privacy_request.{to_status}", actor, target, counts)
    logger.info("privacy request status", extra={"request_id": request_id, "status": to_status})
    return moved


def record_step(deps: Deps, request_id: str, step: str, outcome: str, *, counts: dict[str, int] | None = None,
                actor: Actor = WORKER) -> PrivacyRequest:
    entry = StepDone(step=step, at=deps.now(), outcome=outcome, counts=counts or {})
    try:
        stored = deps.requests.update(request_id, set(), {}, append={"steps": [entry.model_dump()]})
    except StatusMismatch:
        raise NotFound(f"no privacy request {request_id}") from None
    trail.record(deps, "privacy_request.step", actor, {"request_id": request_id, "step": step}, counts)
    logger.info("privacy request step", extra={"request_id": request_id, "step": step, "outcome": outcome,
                                               **(counts or {})})
    return PrivacyRequest.model_validate(stored)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value

