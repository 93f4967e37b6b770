"""Ingestion of one landing file: path -> source, stream -> rows -> sealed records, rejections -> an encrypted
report, progress -> the ingestion record. Whole-file problems fail the ingestion before anything is written;
row problems reject the row only; a tenant key that cannot be used stops and leaves everything for a retry."""
import base64
import hashlib
import json
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from profilevault import observability
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.domain.ingestions import LAST_ERROR_MARK, Ingestion
from profilevault.domain.sources import SOURCE_NAME, SourceSpec
from profilevault.errors import Conflict, IngestionRejected, KeyUnavailable
from profilevault.ingestion import snapshots
from profilevault.ingestion.mapping import MappedRecord, map_row
from profilevault.ingestion.readers import RowRejection, check_encoding, encoding_for, iter_rows
from profilevault.keys import crypto, vault
from profilevault.keys.keyring import TenantKeyring
from profilevault.observability import capture_method, logger
from profilevault.privacy import suppression
from profilevault.profiles import runs
from profilevault.storage import objects
from profilevault.storage.records import StoredRef
from profilevault.storage.sealed import SealedRecord
from profilevault.wiring import Deps

WRITE_BATCH = 500
_DROP = re.compile(
    r"^sources/(?P<source>[^/]+)/(?:(?P<full>full)/(?P<full_file>[^/]+)"
    r"|(?P<incremental>incremental)/\d{4}/\d{2}/\d{2}/\d{2}/(?P<operation>upserts|deletes)/(?P<inc_file>[^/]+))$")


@dataclass(frozen=True)
class LandingObject:
    bucket: str
    key: str
    etag: str
    sequencer: str
    size: int = 0

    @classmethod
    def from_s3_record(cls, record: dict) -> "LandingObject":
        s3 = record["s3"]
        # The sequencer tells two uploads of one key apart; where an emulator omits it, the event time does.
        sequencer = s3["object"].get("sequencer") or record.get("eventTime", "")
        return cls(bucket=s3["bucket"]["name"], key=unquote_plus(s3["object"]["key"]),
                   etag=s3["object"].get("eTag", ""), sequencer=sequencer,
                   size=int(s3["object"].get("size", 0)))

    @property
    def ingestion_id(self) -> str:
        """Deterministic, so a re-delivered S3 event finds the ingestion it already started."""
        digest = hashlib.sha256("\x1f".join((self.bucket, self.key, self.etag, self.sequencer)).encode())
        return "ing_" + digest.hexdigest()[:24]


@dataclass(frozen=True)
class Drop:
    source: str
    kind: str  # "full" | "incremental"
    operation: str  # "upserts" | "deletes"
    file_name: str


def parse_drop_key(key: str) -> Drop:
    match = _DROP.match(key)
    if not match:
        raise IngestionRejected(
            "unexpected location: use sources/<source>/full/<file> or "
            "sources/<source>/incremental/<yyyy>/<mm>/<dd>/<hh>/{upserts,deletes}/<file>")
    if match["full"]:
        return Drop(match["source"], "full", "upserts", match["full_file"])
    return Drop(match["source"], "incremental", match["operation"], match["inc_file"])


@capture_method
def ingest_landing_object(deps: Deps, obj: LandingObject) -> Ingestion:
    """Ingests one landing file; returns the ingestion as stored.
    Raises KeyUnavailable (and other infrastructure errors) so the queue delivers the file again later."""
    ingestion = _start_ingestion(deps, obj)
    if ingestion.status != "processing":
        logger.info("ingestion already finished", extra={"ingestion_id": obj.ingestion_id,
                                                          "status": ingestion.status})
        if ingestion.status == "completed":
            _remove_from_landing(deps, obj)  # in case the first delivery stopped right after completing
        return ingestion
    deps.ingestions.update(obj.ingestion_id, expect_status="processing", attempts=ingestion.attempts + 1)
    try:
        result = _ingest(deps, obj)
        if result["kind"] == "full":
            result.update(snapshots.decide(Ingestion.model_validate({**ingestion.model_dump(), **result}),
                                           snapshots.completed_snapshots(deps, result["source"]),
                                           deps.min_snapshot_share))
    except IngestionRejected as rejected:
        logger.warning("file rejected", extra={"ingestion_id": obj.ingestion_id, "reason": rejected.detail})
        return _finish(deps, obj, status="failed", reason=rejected.detail)
    except FinishedElsewhere:
        logger.info("ingestion was finished by another delivery", extra={"ingestion_id": obj.ingestion_id})
        return deps.ingestions.get(obj.ingestion_id)
    except KeyUnavailable as unavailable:
        logger.error("tenant key unavailable; the file stays for a retry",
                     extra={"ingestion_id": obj.ingestion_id})
        observability.key_unavailable("ingestion")
        deps.ingestions.update(obj.ingestion_id, last_error=unavailable.detail)
        raise
    except Exception as error:
        # The type only: an exception's message may quote the data it choked on.
        logger.error("ingestion failed; the queue will deliver the file again",
                     extra={"ingestion_id": obj.ingestion_id, "error": type(error).__name__,
                            "attempt": ingestion.attempts + 1})
        deps.ingestions.update(obj.ingestion_id, last_error=f"{type(error).__name__}; will retry")
        raise
    if result.get("snapshot") == snapshots.HELD:
        logger.warning("full snapshot held: a refresh will not apply it until an admin does",
                       extra={"ingestion_id": obj.ingestion_id, "reason": result["snapshot_reason"]})
    finished = _finish(deps, obj, status="completed", **result)
    _remove_from_landing(deps, obj)
    if finished.rows_stored:
        runs.queue_run_after_ingestion(deps, obj.ingestion_id)
    return finished


INGESTER = Actor.system("ingest")
_AUDITED_COUNTS = ("rows_read", "rows_stored", "rows_new", "rows_deleted", "rows_rejected", "rows_suppressed",
                   "warnings")


def mark_given_up(deps: Deps, obj: LandingObject) -> Ingestion:
    """The ingest queue gave up on the file's message (its redrive policy moved it to the dead-letter queue): the
    ingestion ends `failed` with the last error its tries recorded. The file stays in landing until the lifecycle
    rule expires it; uploading it again starts a new ingestion."""
    ingestion = _start_ingestion(deps, obj)
    if ingestion.status != "processing":
        return ingestion  # it finished after all (the message was given up after its last try succeeded)
    last_error = (ingestion.last_error or "none recorded (a try ended before it could record one, "
                  "such as a timeout)").removesuffix("; will retry")
    reason = (f"given up after {ingestion.attempts} tries{LAST_ERROR_MARK}{last_error} "
              "(upload the file again once the cause is fixed)")
    logger.error("ingestion given up by the ingest queue", extra={"ingestion_id": obj.ingestion_id,
                                                                  "attempts": ingestion.attempts})
    return _finish(deps, obj, status="failed", reason=reason)


def _start_ingestion(deps: Deps, obj: LandingObject) -> Ingestion:
    """The file's ingestion: created `processing`, or as it stands when a delivery already created it."""
    return deps.ingestions.create(Ingestion(id=obj.ingestion_id, source=drop_source(obj), file=obj.key,
                                            status="processing", started_at=deps.now()))


def drop_source(obj: LandingObject) -> str:
    """The source a landing key names (as far as it names one): what an ingestion is listed under."""
    return obj.key.split("/")[1] if obj.key.count("/") >= 2 else ""


def _finish(deps: Deps, obj: LandingObject, **changes: object) -> Ingestion:
    """Audits the file (one entry per file, never per row) before it is marked finished: if the append fails, the
    message comes back and the file is audited then."""
    source = obj.key.split("/")[1] if obj.key.count("/") >= 2 else ""
    trail.record(deps, f"ingestion.{changes['status']}", INGESTER,
                 {"ingestion_id": obj.ingestion_id, **({"source": source} if SOURCE_NAME.fullmatch(source) else {})},
                 {k: n for k in _AUDITED_COUNTS if isinstance(n := changes.get(k), int)})
    try:
        deps.ingestions.update(obj.ingestion_id, expect_status="processing", **changes, finished_at=deps.now(),
                               last_error=None)
    except Conflict:
        logger.info("ingestion was finished by another delivery", extra={"ingestion_id": obj.ingestion_id})
    else:
        observability.ingestion_finished(str(changes["status"]), changes)
    return deps.ingestions.get(obj.ingestion_id)


def _ingest(deps: Deps, obj: LandingObject) -> dict:
    drop = parse_drop_key(obj.key)
    try:
        source = deps.sources.get(drop.source)
    except ValidationError as invalid:  # registered before a check that now refuses it (e.g. its CSV delimiter)
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in invalid.errors()})
        raise IngestionRejected(f"source {drop.source!r} is registered with settings that are no longer accepted "
                                f"({', '.join(fields)}): PUT /v1/sources/{drop.source} again") from None
    if source is None:
        raise IngestionRejected(f"source {drop.source!r} is not registered: PUT /v1/sources/{drop.source} first")
    spec: SourceSpec = source
    check_encoding(_open(deps, obj), encoding_for(spec))
    tally = _Tally(deps, obj.ingestion_id, drop)
    for row in iter_rows(_open(deps, obj), spec):
        mapped = row if isinstance(row, RowRejection) else map_row(row, spec)
        if isinstance(mapped, RowRejection):
            tally.reject(mapped)
        else:
            tally.add(mapped)
    tally.flush()
    result = tally.result()
    logger.info("file ingested", extra={"ingestion_id": obj.ingestion_id, **{k: v for k, v in result.items()
                                                                            if isinstance(v, int)}})
    return result


class FinishedElsewhere(Exception):
    """Another delivery of the same file finished its ingestion while this one was reading."""


class _Tally:
    """Rows on their way to the tables, a batch at a time, and what the ingestion reports of them: counts (shown
    while the file is read: `rows_read` grows batch by batch), warnings, rejections, rows that repeat an earlier
    row's key, records a full snapshot keeps through the keys of its rejected rows."""

    MAX_LISTED = 100  # row numbers listed per kind (the counts stay exact)

    def __init__(self, deps: Deps, ingestion_id: str, drop: Drop):
        self.deps, self.ingestion_id, self.drop = deps, ingestion_id, drop
        self.report = RejectionReport(deps, ingestion_id)
        self.counts: Counter = Counter()
        self.warning_reasons: Counter = Counter()
        self.batch: list[MappedRecord] = []
        self.kept_ids: list[str] = []
        self.spans: list[dict] = []  # rejections that took several rows
        self.duplicates: list[list[int]] = []  # [earlier row, later row] with the same primary key
        self.reported = 0

    def add(self, mapped: MappedRecord) -> None:
        self.counts["rows_read"] += 1
        for warning in mapped.warnings:
            self.warning_reasons[f"{warning.attribute}: {warning.reason}"] += 1
        if not mapped.attributes and self.drop.operation == "upserts":
            # Stored (the key is valid), but most likely the file's columns are not the ones the source maps.
            self.warning_reasons["row: none of the source's mapped columns has a value"] += 1
        self.batch.append(mapped)
        if len(self.batch) >= WRITE_BATCH:
            self.flush()

    def reject(self, rejection: RowRejection) -> None:
        self.counts["rows_read"] += rejection.rows
        self.counts["rows_rejected"] += rejection.rows
        self.report.add(rejection)
        if rejection.rows > 1 and len(self.spans) < self.MAX_LISTED:
            self.spans.append({"rows": [rejection.row_number, rejection.last_row_number],
                               "reason": rejection.reason})
        if self.drop.kind == "full":
            self.kept_ids += rejection.keys
        if self.counts["rows_read"] - self.reported >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        """Writes (or deletes) the batch, keeps what rejected rows named, and shows how far the file got."""
        source, deps = self.drop.source, self.deps
        if self.batch and self.drop.operation == "deletes":
            tokens = [vault.record_token(deps.keyring, source, m.record_id) for m in self.batch]
            self.counts["rows_deleted"] += deps.records.delete(source, tokens)
        elif self.batch:
            stamp = deps.now()
            sealed = [_seal(deps, source, m, self.ingestion_id, stamp) for m in self.batch]
            # Rows of erased people stay out (privacy.suppression): one batched look-up for the whole batch.
            screened = suppression.screen(deps, source, sealed)
            put = deps.records.put_sealed(source, screened.kept)
            self.counts["rows_new"] += put.new
            kept = {id(s) for s in screened.kept}
            written = [(m.row_number, s.token) for m, s in zip(self.batch, sealed, strict=True) if id(s) in kept]
            self._note_duplicates([row for row, _ in written], [token for _, token in written], put.before)
            refused = screened.suppressed + suppression.recheck(deps, screened)
            self.counts["rows_suppressed"] += refused
            self.counts["rows_stored"] -= refused
        self.counts["rows_stored"] += len(self.batch)
        self.batch.clear()
        if self.kept_ids:
            tokens = [vault.record_token(deps.keyring, source, record_id) for record_id in self.kept_ids]
            self.counts["records_kept"] += deps.records.keep(source, tokens, deps.now())
            self.kept_ids.clear()
        if self.counts["rows_read"] > self.reported:
            self.reported = self.counts["rows_read"]
            try:
                deps.ingestions.update(self.ingestion_id, expect_status="processing",
                                       rows_read=self.counts["rows_read"], rows_stored=self.counts["rows_stored"],
                                       rows_rejected=self.counts["rows_rejected"])
            except Conflict as finished:
                raise FinishedElsewhere from finished

    def _note_duplicates(self, rows: list[int], tokens: list[str], before: dict[str, StoredRef]) -> None:
        """A row whose key an earlier row of the same file already had: the later row wins, and the ingestion says
        which rows (row numbers only). Earlier rows are found in this batch or, through what the records they wrote
        said before this batch was written (`before`), in the table; a record that a later row wrote in an earlier
        try of this ingestion is not an earlier row."""
        in_batch: dict[str, int] = {}
        for row, token in zip(rows, tokens, strict=True):
            earlier = in_batch.get(token)
            stored = before.get(token)
            if earlier is None and stored is not None and stored.ingestion_id == self.ingestion_id:
                earlier = stored.row_number if stored.row_number is not None and stored.row_number < row else None
            if earlier is not None:
                self.warning_reasons[DUPLICATE_KEY] += 1
                if len(self.duplicates) < self.MAX_LISTED:
                    self.duplicates.append([earlier, row])
            in_batch[token] = row

    def result(self) -> dict:
        counts = self.counts
        result = {"source": self.drop.source, "kind": self.drop.kind, "operation": self.drop.operation,
                  "rows_read": counts["rows_read"], "rows_stored": counts["rows_stored"],
                  "rows_rejected": counts["rows_rejected"], "rows_suppressed": counts["rows_suppressed"],
                  "warnings": sum(self.warning_reasons.values()),
                  "warning_reasons": dict(self.warning_reasons)}
        if self.drop.operation == "deletes":
            result["rows_deleted"] = counts["rows_deleted"]
        else:
            result["rows_new"] = counts["rows_new"]
        if self.drop.kind == "full":
            result["records_kept"] = counts["records_kept"]
        if self.spans:
            result["multi_row_rejections"] = self.spans
        if self.duplicates:
            result["duplicate_key_rows"] = self.duplicates
        result.update(self.report.save())
        return result


DUPLICATE_KEY = "row: same primary key as an earlier row of the file (the later row wins)"


def _seal(deps: Deps, source: str, mapped: MappedRecord, ingestion_id: str, stamp: str) -> SealedRecord:
    token = vault.record_token(deps.keyring, source, mapped.record_id)
    return vault.seal_record(deps.keyring, deps.records.address(source, token), token, mapped.record_id,
                             mapped.attributes, [{"attribute": w.attribute, "reason": w.reason}
                                                 for w in mapped.warnings], ingestion_id, stamp, mapped.row_number)


def _open(deps: Deps, obj: LandingObject):
    return objects.open_drop(deps.s3, obj.bucket, obj.key, obj.etag)


def _remove_from_landing(deps: Deps, obj: LandingObject) -> None:
    """The organisation's system stays the source of truth: no plaintext copy is left lying around."""
    objects.remove_drop(deps.s3, obj.bucket, obj.key, obj.etag)


class RejectionReport:
    """Rejected rows with row number and reason, each line sealed under a report key wrapped by the tenant key.
    Spooled to disk past a few MB, so a file full of bad rows does not grow memory."""

    def __init__(self, deps: Deps, ingestion_id: str, object_key: str | None = None):
        self.deps, self.ingestion_id = deps, ingestion_id
        self.object_key = object_key or f"rejections/{ingestion_id}.jsonl"
        self.count = 0
        self._file = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self._key: bytes | None = None

    def add(self, rejection: RowRejection) -> None:
        if self._key is None:
            self._key = crypto.new_data_key()
        self.count += 1
        entry = {"row_number": rejection.row_number, "reason": rejection.reason, "raw": rejection.raw}
        if rejection.rows > 1:
            entry["last_row_number"] = rejection.last_row_number
        line = json.dumps(entry, ensure_ascii=False).encode()
        sealed = crypto.seal(self._key, line, line_aad(self.ingestion_id, self.count))
        self._file.write(base64.b64encode(sealed) + b"\n")

    def save(self) -> dict:
        if not self.count:
            return {}
        assert self._key is not None  # made with the first rejected row
        self._file.seek(0)
        objects.put_report(self.deps.s3, self.deps.vault_bucket, self.object_key, self._file)
        wrapped = self.deps.keyring.wrap_record_key(self._key, report_key_aad(self.ingestion_id))
        return {"rejection_report": self.object_key, "report_key": wrapped}


def line_aad(ingestion_id: str, line_number: int) -> bytes:
    return crypto.item_aad("rejections", ingestion_id, str(line_number), "line")


def report_key_aad(ingestion_id: str) -> bytes:
    return crypto.item_aad("rejections", ingestion_id, "-", "report_key")


def read_rejection_report(s3, keyring: TenantKeyring, vault_bucket: str, ingestion: Ingestion) -> list[dict]:
    """Opens the report of an ingestion (for the admin API)."""
    if not ingestion.rejection_report or not ingestion.report_key:
        return []
    key = keyring.unwrap_record_key(ingestion.report_key, report_key_aad(ingestion.id))
    body = objects.open_report(s3, vault_bucket, ingestion.rejection_report)
    return [json.loads(crypto.open_sealed(key, base64.b64decode(line), line_aad(ingestion.id, number)))
            for number, line in enumerate(body.iter_lines(), start=1) if line]


def erase_rejected_lines(deps: Deps, ingestion: Ingestion, is_theirs: Callable[[dict], bool]) -> int:
    """Re-seals an ingestion's rejection report without the lines `is_theirs` picks (erasure): a new object under a
    new key, then the ingestion names it, then the old object goes (its key was only in the ingestion item, now
    replaced). A report left without lines is deleted. -> the number of lines removed."""
    lines = read_rejection_report(deps.s3, deps.keyring, deps.vault_bucket, ingestion)
    kept = [line for line in lines if not is_theirs(line)]
    if len(kept) == len(lines):
        # An earlier pass may have stopped after naming its new copy and before deleting the old one (unreadable
        # since: its key went with the ingestion item it replaced).
        objects.delete_objects(deps.s3, deps.vault_bucket, [
            k for k in objects.list_keys(deps.s3, deps.vault_bucket, f"rejections/{ingestion.id}")
            if k != ingestion.rejection_report])
        return 0
    removed = len(lines) - len(kept)
    changes: dict[str, Any] = {"rejections_erased": (ingestion.rejections_erased or 0) + removed}
    if kept:
        report = RejectionReport(deps, ingestion.id, f"rejections/{ingestion.id}-{uuid.uuid4().hex[:12]}.jsonl")
        for line in kept:
            report.add(RowRejection(line["row_number"], line["reason"], line["raw"],
                                    last_row_number=line.get("last_row_number", 0)))
        changes.update(report.save())
    else:
        changes.update(rejection_report=None, report_key=None)
    deps.ingestions.update(ingestion.id, **changes)
    objects.delete_objects(deps.s3, deps.vault_bucket, [ingestion.rejection_report] if ingestion.rejection_report
                           else [])
    return removed
