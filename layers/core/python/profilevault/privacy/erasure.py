"""Erasure (GDPR Art. 17), coordinated by the erasure state machine (statemachines/erasure.asl.json), one small
function per step (functions/erasure routes on the step name):

  suppress  an entry per blind identifier and per record token of the person, before anything is deleted
  locate    profiles and source records, as for access (privacy.locate)
  delete    records with their keys and index entries, profiles with their keys and member-map entries (a profile
            that also held others goes too: the next step writes theirs again), the person's lines in rejection
            reports, export packages of their requests; failed drops still in landing are listed with their bound
  recompute a unification run, in turn with every other run: it drops the person from the sealed state, the change
            journal and the suggestions and writes the other members' profiles again (waits for the run's callback)
  shred     every wrapped key item the person's records and profile versions had is gone
  verify    nothing of the person left (records by token and identifier, keys, profiles, member map, journal,
            state); a writer that raced the erasure sends it back to delete, at most MAX_VERIFY_PASSES times
  notify    an event per source with the record IDs to delete at the origin (Art. 17(2), 19)
  complete  the request completes with counts; what was located (the sealed work item) and the subject's sealed
            identifiers are deleted

Every step is idempotent (a retry, a resumed execution) and audited. Execution input and output carry the request ID,
step names and counts only; a step reads what it needs from the request and the sealed work item."""
import csv
import json
import re
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Literal, get_args

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from profilevault.audit.trail import Actor
from profilevault.aws import is_transient
from profilevault.domain.erasures import ErasureWork, SubjectRecord
from profilevault.domain.normalize import normalize_attributes
from profilevault.domain.sources import INDEXED_ATTRIBUTES
from profilevault.errors import Conflict, ErasureIncomplete, ProfileVaultError, TemporarilyUnavailable
from profilevault.ingestion import flow
from profilevault.keys import vault
from profilevault.observability import logger
from profilevault.privacy import requests, suppression
from profilevault.privacy.locate import Located, identifier_refs, locate_subject, ref_text
from profilevault.privacy.requests import REQUEST_ID, PrivacyRequest, Subject
from profilevault.profiles import runs
from profilevault.profiles import state as unification_state
from profilevault.storage import objects
from profilevault.storage.sealed import IndexRef
from profilevault.wiring import Deps

Step = Literal["suppress", "locate", "delete", "recompute", "shred", "verify", "notify", "complete"]
STEPS: tuple[str, ...] = get_args(Step)
START_ERASURE = "start_erasure"  # the worker's step that hands a request to the workflow (privacy.fulfil)
MAX_VERIFY_PASSES = 3
ACTOR = Actor.system("erasure")
_OWN_ERRORS = {ProfileVaultError.__name__} | {cls.__name__ for cls in ProfileVaultError.__subclasses__()}


class StepError(BaseModel):
    """What a Catch passes on: the error name and its cause (the Lambda error payload, as JSON text)."""

    Error: str
    Cause: str | None = None


class StepEvent(BaseModel):
    """What a task state of the state machine passes to the step function."""

    model_config = ConfigDict(extra="forbid")
    step: Step | Literal["mark_failed"]
    request_id: str = Field(pattern=REQUEST_ID)
    task_token: str | None = Field(default=None, max_length=8192)
    failed_step: Step | None = None
    error: StepError | None = None


# ------------------------------------------------------------------ starting and resuming

def execution_name(request_id: str, attempt: int) -> str:
    return f"{request_id}-{attempt}"


def start(deps: Deps, request_id: str) -> None:
    """Starts the workflow for an erasure request that reached in_progress (idempotent: the first attempt's
    execution has a fixed name)."""
    work = load_work(deps, request_id)
    if work is None:
        work = ErasureWork(request_id=request_id)
        save_work(deps, work)
    deps.erasure_executions.start(execution_name(request_id, work.attempt),
                                  {"request_id": request_id, "start_at": STEPS[0]})
    logger.info("erasure started", extra={"request_id": request_id, "attempt": work.attempt})


def handed_over(request: PrivacyRequest) -> bool:
    """Has the worker handed this request to the workflow (so that a failure is the workflow's)?"""
    return request.type == "erasure" and any(s.step == START_ERASURE for s in request.steps)


def resume(deps: Deps, request_id: str, actor: Actor) -> PrivacyRequest:
    """A failed erasure continues in a new execution that begins at the step that failed."""
    request = requests.get_request(deps, request_id)
    if not handed_over(request):
        raise Conflict(f"request {request_id} is not an erasure in its workflow")
    if request.status != "failed":  # an erasure in progress has its execution running: never a second one
        raise Conflict(f"request {request_id} is {request.status}; only a failed erasure resumes")
    request = requests.advance(deps, request_id, "in_progress", "failed", actor=actor)
    begin = request.failed_step if request.failed_step in STEPS else STEPS[0]
    work = load_work(deps, request_id) or ErasureWork(request_id=request_id)
    work.attempt += 1
    work.verify_loops = 0
    save_work(deps, work)
    deps.erasure_executions.start(execution_name(request_id, work.attempt),
                                  {"request_id": request_id, "start_at": begin})
    logger.info("erasure resumed", extra={"request_id": request_id, "step": begin, "attempt": work.attempt})
    return request


# ------------------------------------------------------------------ the steps

def run_step(deps: Deps, event: StepEvent) -> dict:
    """Runs one step for the state machine; -> its counts (and, for verify, whether it found the person clean).
    An AWS error worth retrying becomes TemporarilyUnavailable, which the state machine retries with back-off."""
    try:
        if event.step == "mark_failed":
            return mark_failed(deps, event)
        request = requests.get_request(deps, event.request_id)
        if event.step == "complete" and request.status == "completed":
            return _forget(deps, request, load_work(deps, request.id))  # completed, then interrupted
        if request.type != "erasure" or request.status != "in_progress":
            raise Conflict(f"request {request.id} is a {request.status} {request.type} request, not an erasure in "
                           "progress")
        work = load_work(deps, request.id) or ErasureWork(request_id=request.id)
        outcome = _STEPS[event.step](deps, request, work, event)
    except (ClientError, BotoCoreError) as error:
        if is_transient(error):
            raise TemporarilyUnavailable(f"{event.step}: {type(error).__name__} (transient)") from error
        raise
    if event.step != "recompute":  # the run it queued reports back when it is done
        counts = {k: int(v) for k, v in outcome.items() if isinstance(v, int | bool)}
        # Audited there too (privacy_request.step, with the step's name and counts).
        requests.record_step(deps, request.id, event.step, _outcome(event.step, outcome), counts=counts, actor=ACTOR)
    logger.info("erasure step done", extra={"request_id": request.id, "step": event.step, **outcome})
    return outcome


def _outcome(step: str, outcome: dict) -> str:
    if step == "verify":
        return "clean" if outcome["clean"] else "found more: back to delete"
    return "done"


def suppress_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, _event: StepEvent) -> dict:
    """Before anything is deleted: from now on the person's rows are refused at ingestion."""
    subject = requests.open_subject(deps, request)
    _add(work, locate_subject(deps, subject, _confirmed(request)))
    entries = _suppress(deps, request, work, subject)
    save_work(deps, work)
    return {"entries": entries}


def locate_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, _event: StepEvent) -> dict:
    """Locates again now that nothing new can arrive: what a writer added before the suppression joins in (and is
    suppressed too)."""
    subject = requests.open_subject(deps, request)
    before = (len(work.records), len(work.blind_refs))
    _add(work, locate_subject(deps, subject, _confirmed(request)))
    if (len(work.records), len(work.blind_refs)) != before:
        _suppress(deps, request, work, subject)
    save_work(deps, work)
    return {"profiles": len(work.profile_ids), "records": len(work.records)}


def delete_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, _event: StepEvent) -> dict:
    counts: Counter = Counter()
    for source, tokens in _tokens_by_source(work).items():
        counts["records"] += deps.records.delete(source, tokens)
    for profile_id, key_sks in deps.profiles.erase(work.profile_ids).items():
        counts["profiles"] += bool(key_sks)
        work.profile_keys[profile_id] = sorted(set(work.profile_keys.get(profile_id, [])) | set(key_sks))
    deps.profiles.move_members({}, [(r.source, r.token) for r in work.records])
    counts["rejected_lines"] = _erase_rejected_lines(deps, request, work)
    counts["exports"] = _erase_exports(deps, work)
    work.landing_files = _landing_files(deps, work)
    counts["landing_files"] = len(work.landing_files)
    work.counts = dict(Counter(work.counts) + counts)
    save_work(deps, work)
    return dict(counts)


def recompute_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, event: StepEvent) -> dict:
    """Queues the run; the state machine waits for its callback (task token) before it shreds and verifies."""
    if not event.task_token:
        raise ValueError("recompute needs the task token of its state")
    run = runs.queue_run_after_erasure(deps, event.task_token)
    work.recompute_run_id = run.id
    save_work(deps, work)
    return {}


def shred_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, _event: StepEvent) -> dict:
    """Whatever key item is left of the person's records and profile versions (a writer that raced the delete)."""
    keys = sum(deps.records.shred(source, tokens) for source, tokens in _tokens_by_source(work).items())
    left = deps.profiles.existing_keys(_profile_key_sks(work))
    deps.profiles.delete_keys(left)
    return {"keys_shredded": keys + len(left)}


def verify_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, _event: StepEvent) -> dict:
    findings = _findings(deps, request, work)
    if not findings:
        return {"clean": True}
    work.verify_loops += 1
    save_work(deps, work)
    logger.warning("erasure verification found more", extra={"request_id": request.id, "findings": findings,
                                                               "pass": work.verify_loops})
    if work.verify_loops >= MAX_VERIFY_PASSES:
        raise ErasureIncomplete(f"after {work.verify_loops} passes still found: {', '.join(findings)}")
    return {"clean": False, "passes": work.verify_loops}


def notify_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, _event: StepEvent) -> dict:
    ids: dict[str, list[str]] = defaultdict(list)
    for r in work.records:
        ids[r.source].append(r.record_id)
    return {"sources": len(ids), "events": deps.origin_notices.publish(request.id, ids) if ids else 0}


def complete_step(deps: Deps, request: PrivacyRequest, work: ErasureWork, _event: StepEvent) -> dict:
    counts = {k: work.counts.get(k, 0) for k in ("records", "profiles", "rejected_lines", "exports")}
    requests.advance(deps, request.id, "completed", "in_progress", actor=ACTOR,
                     result={"outcome": "erased", **counts, "sources_notified": len({r.source for r in work.records}),
                             "landing_files": work.landing_files})
    return {**counts, **_forget(deps, request, work)}


def mark_failed(deps: Deps, event: StepEvent) -> dict:
    """Catch: the request fails with the step and a reason that names the error, never data."""
    reason = failure_reason(event.error)
    try:
        requests.advance(deps, event.request_id, "failed", "in_progress", failed_step=event.failed_step,
                         reason=reason, actor=ACTOR)
    except Conflict:
        logger.info("erasure failed after its request moved on", extra={"request_id": event.request_id})
        return {"marked": False}
    requests.record_step(deps, event.request_id, event.failed_step or "unknown", "failed", actor=ACTOR)
    logger.warning("erasure failed", extra={"request_id": event.request_id, "step": event.failed_step,
                                            "reason": reason})
    return {"marked": True}


_STEPS = {"suppress": suppress_step, "locate": locate_step, "delete": delete_step, "recompute": recompute_step,
          "shred": shred_step, "verify": verify_step, "notify": notify_step, "complete": complete_step}


def failure_reason(error: StepError | None) -> str:
    """The error's name; our own errors' messages (which never hold data); an AWS error's code."""
    if error is None:
        return "unknown error"
    try:
        message = json.loads(error.Cause or "{}").get("errorMessage", "")
    except (ValueError, AttributeError):
        message = ""
    if error.Error in _OWN_ERRORS and message:
        return f"{error.Error}: {message}"[:300]
    code = re.match(r"An error occurred \((\w+)\)", message or "")
    return f"{error.Error}: {code.group(1)}" if code else error.Error[:100]


# ------------------------------------------------------------------ helpers

def load_work(deps: Deps, request_id: str) -> ErasureWork | None:
    sealed = deps.erasure_work.get(request_id)
    return ErasureWork.model_validate(vault.open_document(deps.keyring, sealed)) if sealed else None


def save_work(deps: Deps, work: ErasureWork) -> None:
    """Sealed under a new data key every time (the repository deletes the one it replaces)."""
    deps.erasure_work.put(vault.seal(deps.keyring, deps.erasure_work.address(work.request_id),
                                     work.model_dump(mode="json")))


def _confirmed(request: PrivacyRequest) -> list[str] | None:
    return list(request.profile_ids) or None


def _add(work: ErasureWork, located: Located) -> None:
    work.add_located([SubjectRecord(source=r.source, token=r.token, record_id=r.record_id) for r in located.records],
                     list(located.profile_ids), list(located.blind_refs))


def _suppress(deps: Deps, request: PrivacyRequest, work: ErasureWork, subject: Subject) -> int:
    """Entries for every identifier and record token known so far, and for the subject's own (a record ID the
    request named stays out even if nothing of it is stored now)."""
    tokens = {(r.source, r.token) for r in work.records}
    if subject.source_record is not None:
        source = subject.source_record.source
        tokens.add((source, vault.record_token(deps.keyring, source, subject.source_record.record_id)))
    refs = sorted(set(work.blind_refs) | {ref_text(r) for r in identifier_refs(deps, subject)})
    work.blind_refs = refs
    return suppression.suppress(deps, request.id, refs, sorted(tokens))


def _tokens_by_source(work: ErasureWork) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for r in work.records:
        grouped[r.source].append(r.token)
    return dict(grouped)


def _profile_key_sks(work: ErasureWork) -> list[str]:
    return sorted({sk for sks in work.profile_keys.values() for sk in sks})


def _work_refs(work: ErasureWork) -> list[str]:
    """Every blind reference the person's requests can be indexed under (see Located.refs)."""
    return sorted({*work.blind_refs, *(f"profile#{p}" for p in work.profile_ids),
                   *(f"record#{r.source}#{r.token}" for r in work.records)})


def _erase_exports(deps: Deps, work: ErasureWork) -> int:
    """Access and portability packages of the person's requests (any of them, not only this one)."""
    keys = [r.export.key for r in requests.requests_of_subject(deps, _work_refs(work)) if r.export]
    objects.delete_objects(deps.s3, deps.exports_bucket, keys)
    return len(keys)


def _erase_rejected_lines(deps: Deps, request: PrivacyRequest, work: ErasureWork) -> int:
    """Rejected rows are not indexed (they could not be read as records), so each kept report is opened and a line
    is the person's when one of its values is the record ID of one of their records of that source, or normalises
    to one of their identifiers. The cost grows with the rejected rows kept (RejectionReportRetentionDays), not
    with the tenant's records."""
    refs = set(work.blind_refs)
    record_ids: dict[str, set[str]] = defaultdict(set)
    for r in work.records:
        record_ids[r.source].add(r.record_id)
    subject = requests.open_subject(deps, request)
    if subject.source_record is not None:
        record_ids[subject.source_record.source].add(subject.source_record.record_id)
    removed = 0
    for source in deps.sources.list():
        for ingestion in deps.ingestions.of_source(source.name):
            if ingestion.rejection_report:
                ids = record_ids.get(source.name, set())

                def theirs(line: dict, ids: set[str] = ids) -> bool:
                    return _mentions(deps, line["raw"], refs, ids)
                removed += flow.erase_rejected_lines(deps, ingestion, theirs)
    return removed


def _mentions(deps: Deps, raw: str, refs: set[str], record_ids: set[str]) -> bool:
    for value in _values(raw):
        if value in record_ids:
            return True
        for attribute in INDEXED_ATTRIBUTES:
            normalised, _ = normalize_attributes({attribute: value})
            if attribute in normalised and \
                    f"{attribute}#{deps.keyring.blind_index(attribute, normalised[attribute])}" in refs:
                return True
    return False


def _values(raw: str) -> set[str]:
    """The values of a rejected row, whatever broke it: a JSON object's scalars, else the fields of the line read as
    CSV with each usual delimiter (the report does not say which one the source uses)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        values = [str(v) for v in parsed.values() if isinstance(v, str | int | float) and not isinstance(v, bool)]
    else:
        lines = raw.splitlines()
        values = [v for delimiter in ",;\t|" for row in csv.reader(lines, delimiter=delimiter) for v in row]
    return {v.strip() for v in values if v.strip()}


def _landing_files(deps: Deps, work: ErasureWork) -> list[dict]:
    """Drops of the person's sources that failed as a whole stay in landing until the lifecycle rule expires them
    (nobody could read them as rows, so nobody can tell whose rows they hold): listed with that bound."""
    files = []
    for source in sorted({r.source for r in work.records}):
        for ingestion in deps.ingestions.of_source(source):
            if ingestion.status != "failed":
                continue
            written = objects.last_modified(deps.s3, deps.landing_bucket, ingestion.file)
            if written is not None:
                expires = written + timedelta(days=deps.landing_retention_days)
                files.append({"file": ingestion.file, "expires_by": expires.isoformat(timespec="seconds")})
    return files


def _findings(deps: Deps, request: PrivacyRequest, work: ErasureWork) -> list[str]:
    """What of the person is still stored; leftover records join the work, so the next delete reaches them."""
    found = []
    leftovers = _leftover_records(deps, work)
    if leftovers:
        work.add_located(leftovers, [], [])
        found.append("records")
    if any(deps.records.remaining_keys(source, tokens) for source, tokens in _tokens_by_source(work).items()):
        found.append("record_keys")
    if deps.profiles.existing_keys(_profile_key_sks(work)):
        found.append("profile_keys")
    person = {(r.source, r.token) for r in work.records}
    for profile_id in work.profile_ids:  # gone, or written again by the run without the person
        sealed = deps.profiles.get(profile_id)
        members = vault.open_document(deps.keyring, sealed)["members"] if sealed else []
        if any((m["source"], vault.record_token(deps.keyring, m["source"], m["record_id"])) in person
               for m in members):
            found.append("profiles")
            break
    if deps.profiles.profiles_of(sorted(person)):
        found.append("member_map")
    if any((c.source, token) in person for c in deps.changes.read() for token in c.tokens):
        found.append("journal")
    if unification_state.holds_any(deps, person):
        found.append("unification_state")
    return found


def _leftover_records(deps: Deps, work: ErasureWork) -> list[SubjectRecord]:
    """Records of the person stored again since the delete: the same records (by token), or records holding one of
    their identifiers that belong to no profile or to one of theirs (a record in another profile is someone else's,
    as locate decides)."""
    known = {(r.source, r.token): r for r in work.records}
    found = []
    for source, tokens in _tokens_by_source(work).items():
        stored = deps.records.refs(source, tokens)
        found += [known[(source, t)] for t in stored]
    hits = {hit for ref in work.blind_refs for hit in deps.records.find(IndexRef(*ref.split("#", 1)))} - set(known)
    owners = deps.profiles.profiles_of(sorted(hits))
    theirs = [hit for hit in hits if owners.get(hit) is None or owners[hit] in work.profile_ids]
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, token in theirs:
        by_source[source].append(token)
    for source, tokens in by_source.items():
        for record in deps.records.read(source, sorted(tokens)):
            found.append(SubjectRecord(source=source, token=record.token,
                                       record_id=vault.open_record(deps.keyring, record).record_id))
    return found


def _forget(deps: Deps, request: PrivacyRequest, work: ErasureWork | None) -> dict:
    """What the erasure itself kept: the located set (record IDs) and the sealed identifiers of this request and of
    the person's finished requests. The requests stay, as the record of what was done (no personal data)."""
    forgotten = 0
    if work is not None:
        finished = [r for r in requests.requests_of_subject(deps, _work_refs(work))
                    if r.id != request.id and r.status in ("completed", "cancelled")]
        for other in finished:
            requests.forget_subject(deps, other.id)
        forgotten = len(finished)
        deps.erasure_work.delete(request.id)
    requests.forget_subject(deps, request.id)
    return {"subjects_forgotten": forgotten + 1}
