"""What happens to a privacy request after the 202, in the privacy worker (the requests queue carries its ID only):
locate the subject, then build the access or portability package, or hand an erasure to its workflow.

Every step is safe to run again (a message delivered twice, or a retry): each status move is conditional, so a
request cancelled meanwhile, or moved on by another delivery, is left alone (errors.Conflict)."""
from profilevault.privacy import erasure, requests
from profilevault.privacy.export import build_package
from profilevault.privacy.locate import locate_subject
from profilevault.privacy.requests import PrivacyRequest
from profilevault.wiring import Deps

# The worker's own steps (the erasure workflow names its steps itself).
LOCATE, PACKAGE, START_ERASURE = "locate", "package", "start_erasure"
WORKER_STEPS = frozenset({LOCATE, PACKAGE, START_ERASURE})


def fulfil_request(deps: Deps, request_id: str) -> PrivacyRequest:
    request = requests.get_request(deps, request_id)
    if request.status == "received":
        request = requests.advance(deps, request_id, "locating", "received")
    if request.status == "locating":
        request = locate(deps, request)
    if request.status == "in_progress":
        if request.type == "erasure":
            hand_to_erasure(deps, request)
        else:
            request = package(deps, request)
    return request


def locate(deps: Deps, request: PrivacyRequest) -> PrivacyRequest:
    """Finds the subject; several profiles stop for an officer, none completes with "no data held"."""
    located = locate_subject(deps, requests.open_subject(deps, request))
    requests.index_subject(deps, request.id, located.refs())
    counts = {"profiles": len(located.profile_ids), "records": len(located.records)}
    if len(located.profile_ids) > 1:
        requests.record_step(deps, request.id, LOCATE, "several profiles: needs review", counts=counts)
        return requests.advance(deps, request.id, "needs_review", "locating",
                                candidate_profile_ids=list(located.profile_ids))
    if located.empty:
        requests.record_step(deps, request.id, LOCATE, "no data held", counts=counts)
        return requests.advance(deps, request.id, "completed", "locating", result={"outcome": "no data held"})
    requests.record_step(deps, request.id, LOCATE, "found", counts=counts)
    return requests.advance(deps, request.id, "in_progress", "locating", profile_ids=list(located.profile_ids))


def package(deps: Deps, request: PrivacyRequest) -> PrivacyRequest:
    """Locates again within the confirmed profiles (they may have changed since) and builds the package."""
    located = locate_subject(deps, requests.open_subject(deps, request), profile_ids=request.profile_ids)
    export = build_package(deps, request, located)
    counts = {"profiles": len(located.profile_ids), "records": len(located.records), "files": export.files,
              "bytes": export.bytes}
    requests.record_step(deps, request.id, PACKAGE, "stored", counts=counts)
    return requests.advance(deps, request.id, "completed", "in_progress", export=export,
                            result={"outcome": "package ready", "profiles": counts["profiles"],
                                    "records": counts["records"]})


def hand_to_erasure(deps: Deps, request: PrivacyRequest) -> None:
    if any(s.step == START_ERASURE for s in request.steps):
        return  # already handed over (a second delivery)
    erasure.start(deps, request.id)  # idempotent: the first execution's name is fixed
    requests.record_step(deps, request.id, START_ERASURE, "started")


def fail(deps: Deps, request_id: str, reason: str) -> None:
    """The worker gave up on a request (its message is going to the dead-letter queue): `failed`, with the step
    that failed, so a retry resumes there. `reason` holds no personal data (an error type and a count)."""
    request = requests.get_request(deps, request_id)
    step = {"received": LOCATE, "locating": LOCATE}.get(request.status)
    if step is None and request.status == "in_progress":
        step = START_ERASURE if request.type == "erasure" else PACKAGE
    if step is None:
        return  # finished, cancelled or waiting for review meanwhile: nothing failed
    requests.advance(deps, request_id, "failed", request.status, failed_step=step, reason=reason)
