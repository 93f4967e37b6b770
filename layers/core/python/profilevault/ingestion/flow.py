"""Ingestion of one landing file: path -> source, stream -> rows -> sealed records, rejections -> an encrypted
report, progress -> the ingestion record. Whole-file problems fail the ingestion before anything is written;
row problems reject the row only; a tenant key that cannot be used stops and leaves everything for a retry."""
import base64
import hashlib
import json
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from urllib.parse import unquote_plus

from pydantic import ValidationError

from profilevault import observability
from profilevault.domain.sources import SourceSpec
from profilevault.errors import Conflict, IngestionRejected, KeyUnavailable
from profilevault.ingestion.mapping import MappedRecord, map_row
from profilevault.ingestion.readers import RowRejection, check_encoding, encoding_for, iter_rows
from profilevault.keys import crypto, vault
from profilevault.keys.keyring import TenantKeyring
from profilevault.observability import capture_method, logger
from profilevault.profiles import runs
from profilevault.storage import objects, store
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
def ingest_landing_object(deps: Deps, obj: LandingObject) -> dict:
    """Ingests one landing file; returns the ingestion as the API shows it.
    Raises KeyUnavailable (and other infrastructure errors) so the queue delivers the file again later."""
    source_guess = obj.key.split("/")[1] if obj.key.count("/") >= 2 else ""
    ingestion = store.create_ingestion(deps.dynamodb, deps.tables, deps.tenant, {
        "id": obj.ingestion_id, "source": source_guess, "file": obj.key, "status": "processing",
        "rows_read": 0, "rows_stored": 0, "rows_rejected": 0, "warnings": 0, "attempts": 0,
        "started_at": deps.now()})
    if ingestion["status"] != "processing":
        logger.info("ingestion already finished", extra={"ingestion_id": obj.ingestion_id,
                                                          "status": ingestion["status"]})
        if ingestion["status"] == "completed":
            _remove_from_landing(deps, obj)  # in case the first delivery stopped right after completing
        return ingestion
    store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, obj.ingestion_id,
                           {"attempts": ingestion.get("attempts", 0) + 1}, expect_status="processing")
    try:
        result = _ingest(deps, obj)
    except IngestionRejected as rejected:
        logger.warning("file rejected", extra={"ingestion_id": obj.ingestion_id, "reason": rejected.detail})
        return _finish(deps, obj, {"status": "failed", "reason": rejected.detail})
    except KeyUnavailable as unavailable:
        logger.error("tenant key unavailable; the file stays for a retry",
                     extra={"ingestion_id": obj.ingestion_id})
        observability.key_unavailable("ingestion")
        store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, obj.ingestion_id,
                               {"last_error": unavailable.detail})
        raise
    except Exception as error:
        store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, obj.ingestion_id,
                               {"last_error": f"{type(error).__name__}; will retry"})
        raise
    finished = _finish(deps, obj, {"status": "completed", **result})
    _remove_from_landing(deps, obj)
    if finished["rows_stored"]:
        runs.queue_run_after_ingestion(deps, obj.ingestion_id)
    return finished


def _finish(deps: Deps, obj: LandingObject, changes: dict) -> dict:
    try:
        store.update_ingestion(deps.dynamodb, deps.tables, deps.tenant, obj.ingestion_id,
                               {**changes, "finished_at": deps.now(), "last_error": None},
                               expect_status="processing")
    except Conflict:
        logger.info("ingestion was finished by another delivery", extra={"ingestion_id": obj.ingestion_id})
    else:
        observability.ingestion_finished(changes["status"], changes)
    return store.get_ingestion(deps.dynamodb, deps.tables, deps.tenant, obj.ingestion_id)


def _ingest(deps: Deps, obj: LandingObject) -> dict:
    drop = parse_drop_key(obj.key)
    source = store.get_source(deps.dynamodb, deps.tables, deps.tenant, drop.source)
    if source is None:
        raise IngestionRejected(f"source {drop.source!r} is not registered: PUT /v1/sources/{drop.source} first")
    try:
        spec = SourceSpec.model_validate({k: source[k] for k in SourceSpec.model_fields if k in source})
    except ValidationError as invalid:  # registered before a check that now refuses it (e.g. its CSV delimiter)
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in invalid.errors()})
        raise IngestionRejected(f"source {drop.source!r} is registered with settings that are no longer accepted "
                                f"({', '.join(fields)}): PUT /v1/sources/{drop.source} again") from None
    check_encoding(_open(deps, obj), encoding_for(spec))
    report = RejectionReport(deps, obj.ingestion_id)
    counts: Counter = Counter()
    warning_reasons: Counter = Counter()
    batch: list = []

    def flush() -> None:
        if drop.operation == "deletes":
            tokens = [vault.record_token(deps.keyring, drop.source, m.record_id) for m in batch]
            counts["rows_deleted"] += store.delete_records(deps.dynamodb, deps.tables, deps.tenant, drop.source,
                                                           tokens)
        else:
            stamp = deps.now()
            sealed = [vault.seal_record(deps.keyring, deps.tenant, drop.source, m.record_id, m.attributes,
                                        [{"attribute": w.attribute, "reason": w.reason} for w in m.warnings],
                                        obj.ingestion_id, stamp) for m in batch]
            counts["rows_new"] += store.write_records(deps.dynamodb, deps.tables, deps.tenant, drop.source, sealed)
        counts["rows_stored"] += len(batch)
        batch.clear()

    for row in iter_rows(_open(deps, obj), spec):
        counts["rows_read"] += 1
        mapped = row if isinstance(row, RowRejection) else map_row(row, spec)
        if isinstance(mapped, RowRejection):
            report.add(mapped)
            continue
        assert isinstance(mapped, MappedRecord)
        for warning in mapped.warnings:
            warning_reasons[f"{warning.attribute}: {warning.reason}"] += 1
        if not mapped.attributes and drop.operation == "upserts":
            # Stored (the key is valid), but most likely the file's columns are not the ones the source maps.
            warning_reasons["row: none of the source's mapped columns has a value"] += 1
        batch.append(mapped)
        if len(batch) >= WRITE_BATCH:
            flush()
    if batch:
        flush()
    result = {"source": drop.source, "kind": drop.kind, "operation": drop.operation,
              "rows_read": counts["rows_read"], "rows_stored": counts["rows_stored"],
              "rows_rejected": report.count, "warnings": sum(warning_reasons.values()),
              "warning_reasons": json.dumps(dict(warning_reasons), sort_keys=True)}
    if drop.operation == "deletes":
        result["rows_deleted"] = counts["rows_deleted"]
    else:
        result["rows_new"] = counts["rows_new"]
    result.update(report.save())
    logger.info("file ingested", extra={"ingestion_id": obj.ingestion_id, **{k: v for k, v in result.items()
                                                                            if isinstance(v, int)}})
    return result


def _open(deps: Deps, obj: LandingObject):
    return objects.open_drop(deps.s3, obj.bucket, obj.key, obj.etag)


def _remove_from_landing(deps: Deps, obj: LandingObject) -> None:
    """The organisation's system stays the source of truth: no plaintext copy is left lying around."""
    objects.remove_drop(deps.s3, obj.bucket, obj.key, obj.etag)


class RejectionReport:
    """Rejected rows with row number and reason, each line sealed under a report key wrapped by the tenant key.
    Spooled to disk past a few MB, so a file full of bad rows does not grow memory."""

    def __init__(self, deps: Deps, ingestion_id: str):
        self.deps, self.ingestion_id = deps, ingestion_id
        self.count = 0
        self._file = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self._key: bytes | None = None

    @property
    def object_key(self) -> str:
        return f"rejections/{self.ingestion_id}.jsonl"

    def add(self, rejection: RowRejection) -> None:
        if self._key is None:
            self._key = crypto.new_data_key()
        self.count += 1
        line = json.dumps({"row_number": rejection.row_number, "reason": rejection.reason, "raw": rejection.raw},
                          ensure_ascii=False).encode()
        sealed = crypto.seal(self._key, line, line_aad(self.ingestion_id, self.count))
        self._file.write(base64.b64encode(sealed) + b"\n")

    def save(self) -> dict:
        if not self.count:
            return {}
        self._file.seek(0)
        objects.put_report(self.deps.s3, self.deps.vault_bucket, self.object_key, self._file)
        wrapped = self.deps.keyring.wrap_record_key(self._key, report_key_aad(self.ingestion_id))
        return {"rejection_report": self.object_key, "report_key": wrapped}


def line_aad(ingestion_id: str, line_number: int) -> bytes:
    return crypto.item_aad("rejections", ingestion_id, str(line_number), "line")


def report_key_aad(ingestion_id: str) -> bytes:
    return crypto.item_aad("rejections", ingestion_id, "-", "report_key")


def read_rejection_report(s3, keyring: TenantKeyring, vault_bucket: str, ingestion: dict) -> list[dict]:
    """Opens the report of an ingestion (for the admin API)."""
    if not ingestion.get("rejection_report"):
        return []
    key = keyring.unwrap_record_key(ingestion["report_key"], report_key_aad(ingestion["id"]))
    body = objects.open_report(s3, vault_bucket, ingestion["rejection_report"])
    return [json.loads(crypto.open_sealed(key, base64.b64decode(line), line_aad(ingestion["id"], number)))
            for number, line in enumerate(body.iter_lines(), start=1) if line]
