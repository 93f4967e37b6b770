"""What a privacy officer does with a request through the API: file it, read and list requests, confirm the
subject's profiles, cancel, extend the due date, retry a failed request, fetch the package. Each checks the request's
status with a conditional write (errors.Conflict when it is in another one)."""
from typing import Any

from pydantic import BaseModel

from profilevault.api import cursors
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.errors import Conflict, InvalidInput
from profilevault.privacy import erasure, fulfil, requests
from profilevault.privacy.requests import (
    OPEN,
    Extension,
    ExtensionReason,
    NewPrivacyRequest,
    PrivacyRequest,
    RequestType,
    Status,
    StatusChange,
    StepDone,
)
from profilevault.storage import objects
from profilevault.storage.requests import StatusMismatch
from profilevault.wiring import Deps


class FiledRequest(BaseModel):
    """The 202 answer to a new request."""

    id: str
    type: RequestType
    status: Status
    received_at: str
    due_at: str


class ListedRequest(FiledRequest):
    """A request in a list: IDs, types, statuses and dates only."""

    overdue: bool


class RequestPage(BaseModel):
    items: list[ListedRequest]
    next_cursor: str | None


class ExportView(BaseModel):
    bytes: int
    files: int
    created_at: str


class RequestView(ListedRequest):
    """A request in full, as the API shows it: no personal data is in it (the subject stays sealed)."""

    history: list[StatusChange]
    steps: list[StepDone]
    candidate_profile_ids: list[str]
    profile_ids: list[str]
    result: dict[str, Any] | None
    failed_step: str | None
    reason: str | None
    extension: Extension | None
    export: ExportView | None


def file_request(deps: Deps, new: NewPrivacyRequest, actor: Actor) -> FiledRequest:
    return FiledRequest.model_validate(requests.create_request(deps, new, actor).model_dump())


def shown(request: PrivacyRequest, now: str) -> RequestView:
    body = request.model_dump(exclude={"subject_refs", "export"})
    return RequestView.model_validate({
        **body, "overdue": request.overdue(now),
        "export": request.export.model_dump(exclude={"key"}) if request.export else None})


def show_request(deps: Deps, request_id: str) -> RequestView:
    return shown(requests.get_request(deps, request_id), deps.now())


def list_requests(deps: Deps, status: str | None, type_: str | None, overdue: bool, limit: int,
                  cursor: str | None) -> RequestPage:
    """Newest first; IDs, types, statuses and dates only."""
    after = cursors.decode(cursor, cursors.REQUEST) if cursor else None
    page, last = requests.list_requests(deps, status, type_, overdue, limit, after)
    now = deps.now()
    return RequestPage(items=[ListedRequest.model_validate({**r.model_dump(), "overdue": r.overdue(now)})
                              for r in page],
                       next_cursor=cursors.encode(last) if last else None)


def confirm(deps: Deps, request_id: str, profile_ids: list[str], actor: Actor) -> RequestView:
    """The officer says which of the candidate profiles are the subject's; the request goes on with those only."""
    request = requests.get_request(deps, request_id)
    chosen = sorted(set(profile_ids))
    strangers = [p for p in chosen if p not in request.candidate_profile_ids]
    if request.status == "needs_review" and strangers:
        raise InvalidInput(f"not candidate profiles of this request: {strangers}; "
                           f"candidates: {request.candidate_profile_ids}")
    confirmed = requests.advance(deps, request_id, "in_progress", "needs_review", actor=actor, profile_ids=chosen)
    requests.enqueue(deps, request_id)  # the worker builds the package, or hands an erasure to its workflow
    return shown(confirmed, deps.now())


def cancel(deps: Deps, request_id: str, actor: Actor) -> RequestView:
    return shown(requests.advance(deps, request_id, "cancelled", requests.CANCELLABLE, actor=actor), deps.now())


def extend(deps: Deps, request_id: str, months: int, reason: ExtensionReason, actor: Actor) -> RequestView:
    """Art. 12(3): once, by up to two further months, counted from receipt."""
    request = requests.get_request(deps, request_id)
    extension = requests.Extension(months=months, reason=reason, at=deps.now())
    try:
        stored = deps.requests.update(
            request_id, set(OPEN), {"extension": extension.model_dump(),
                                    "due_at": requests.due_date(request.received_at, months)},
            condition="attribute_not_exists(extension)")
    except StatusMismatch as mismatch:
        if mismatch.current in OPEN:
            raise Conflict(f"request {request_id} has been extended already (only once)") from None
        raise Conflict(f"request {request_id} is {mismatch.current}: nothing left to extend") from None
    trail.record(deps, "privacy_request.extended", actor, {"request_id": request_id, "reason": reason},
                 {"months": months})
    return shown(PrivacyRequest.model_validate(stored), deps.now())


def retry(deps: Deps, request_id: str, actor: Actor) -> RequestView:
    """A failed request resumes from the step that failed: the worker's steps through the requests queue, the
    erasure workflow's through the workflow."""
    request = requests.get_request(deps, request_id)
    if request.status != "failed":
        raise Conflict(f"request {request_id} is {request.status}; only a failed request is retried")
    if erasure.handed_over(request):  # the workflow failed (its steps may share a name with the worker's)
        resumed = erasure.resume(deps, request_id, actor)  # a new execution that begins at the step that failed
    elif request.failed_step == fulfil.LOCATE:
        resumed = requests.advance(deps, request_id, "locating", "failed", actor=actor)
        requests.enqueue(deps, request_id)
    else:
        resumed = requests.advance(deps, request_id, "in_progress", "failed", actor=actor)
        requests.enqueue(deps, request_id)
    return shown(resumed, deps.now())


def export_link(deps: Deps, request_id: str, actor: Actor) -> str:
    """A presigned link to the package, valid 15 minutes. Audited before the link is handed out (S3 serves the
    download itself)."""
    request = requests.get_request(deps, request_id)
    if request.export is None:
        raise Conflict(f"request {request_id} ({request.type}, {request.status}) has no package")
    link = objects.export_link(deps.s3, deps.exports_bucket, request.export.key, f"{request_id}.zip")
    trail.record(deps, "privacy_request.export_downloaded", actor, {"request_id": request_id},
                 {"bytes": request.export.bytes, "files": request.export.files})
    return link


def request_body_digest(deps: Deps, new: NewPrivacyRequest) -> str:
    """A keyed digest of a request body, so the idempotency record can tell a replay from a different request
    under the same key without holding anything readable."""
    return deps.keyring.blind_index("privacy_request_body", new.model_dump_json())

