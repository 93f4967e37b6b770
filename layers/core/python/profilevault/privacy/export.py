"""Access (Art. 15) and portability (Art. 20) packages: one zip with `package.json` (the request, the profiles,
each source with its description, purposes and retention where declared, the subject's requests, and every record
with source, record ID, ingestion time and values) and, for portability, a CSV per source.

Records are read a batch at a time and written straight into the zip, which is spooled to a temporary file past
8 MB and uploaded in parts: a subject with thousands of records never needs the whole package in memory. CSV cells
that a spreadsheet would run as a formula are neutralised."""
import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO

from profilevault.domain.sources import Source
from profilevault.keys import vault
from profilevault.privacy.locate import Located, LocatedRecord
from profilevault.privacy.requests import Export, PrivacyRequest, requests_of_subject
from profilevault.storage import objects
from profilevault.storage.dynamo import BATCH_GET_MAX
from profilevault.wiring import Deps

PACKAGE_FORMAT = "profilevault-access-package/1"
SPOOL_BYTES = 8 << 20
CSV_SPOOL_BYTES = 1 << 20
READ_BATCH = BATCH_GET_MAX
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def build_package(deps: Deps, request: PrivacyRequest, located: Located) -> Export:
    """Builds the subject's package and stores it in the exports bucket under the request's ID."""
    key = objects.export_key(request.id)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        files = _write_zip(deps, request, located, spool)
        size = spool.tell()
        spool.seek(0)
        objects.put_export(deps.s3, deps.exports_bucket, key, spool)
    return Export(key=key, bytes=size, files=files, created_at=deps.now())


def _write_zip(deps: Deps, request: PrivacyRequest, located: Located, spool) -> int:
    tables = located.by_source()
    sources = {name: deps.sources.get(name) for name in tables}
    rows: dict[str, IO[str]] = {}
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("package.json", "w", force_zip64=True) as raw:
            out = io.TextIOWrapper(raw, encoding="utf-8")
            out.write("{" + _members({
                "format": PACKAGE_FORMAT,
                "request": {"id": request.id, "type": request.type, "received_at": request.received_at,
                            "due_at": request.due_at},
                "generated_at": deps.now(),
                "profiles": _profiles(deps, located.profile_ids),
                "sources": [_describe(name, sources[name], len(records)) for name, records in tables.items()],
                "requests": [_shown_request(r) for r in requests_of_subject(deps, located.refs())],
                "files": ["package.json"] + ([f"{n}.csv" for n in tables] if request.type == "portability" else []),
            }) + ', "records": [')
            first = True
            for name, records in tables.items():
                if request.type == "portability":
                    rows[name] = tempfile.SpooledTemporaryFile(max_size=CSV_SPOOL_BYTES, mode="w+", encoding="utf-8")
                for record in _opened(deps, name, records):
                    out.write(("" if first else ",") + "\n" + json.dumps(record, ensure_ascii=False))
                    first = False
                    if name in rows:
                        rows[name].write(json.dumps(record, ensure_ascii=False) + "\n")
            out.write("\n]}\n")
            out.flush()
            out.detach()
        for name, spooled in rows.items():
            spooled.seek(0)
            with archive.open(f"{name}.csv", "w", force_zip64=True) as raw:
                _write_csv(spooled, sources[name], raw)
            spooled.close()
    return 1 + len(rows)


def _members(values: dict) -> str:
    return ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False, sort_keys=True)}"
                     for k, v in values.items())


def _profiles(deps: Deps, profile_ids: tuple[str, ...]) -> list[dict]:
    out = []
    for profile_id in profile_ids:
        sealed = deps.profiles.get(profile_id)
        if sealed:
            profile = vault.open_document(deps.keyring, sealed)
            out.append({k: profile[k] for k in ("id", "attributes", "members", "previous_ids") if k in profile})
    return out


def _describe(name: str, source: Source | None, count: int) -> dict:
    """What Art. 15(1) asks besides the data: where it came from, why it is held, for how long (a source removed
    meanwhile is named only)."""
    described: dict = {"name": name, "records": count}
    for field in ("description", "purposes", "retention"):
        if source is not None and getattr(source, field):
            described[field] = getattr(source, field)
    return described


def _shown_request(request: PrivacyRequest) -> dict:
    return {"id": request.id, "type": request.type, "status": request.status, "received_at": request.received_at,
            "due_at": request.due_at, "history": [h.model_dump() for h in request.history]}


def _opened(deps: Deps, source: str, records: list[LocatedRecord]) -> Iterator[dict]:
    """The records of one source, opened a batch at a time."""
    for start in range(0, len(records), READ_BATCH):
        tokens = [r.token for r in records[start:start + READ_BATCH]]
        for sealed in deps.records.read(source, tokens):
            opened = vault.open_record(deps.keyring, sealed)
            yield {"source": source, "record_id": opened.record_id, "ingested_at": opened.ingested_at,
                   "values": opened.attributes}


def _write_csv(records_jsonl: IO[str], source: Source | None, raw: IO[bytes]) -> None:
    """One row per record: record_id, ingested_at, then the source's attributes in its mapping's order (any other
    attribute a record holds after the mapping changed comes last)."""
    columns = list(dict.fromkeys(source.fields.values())) if source else []
    extra: set[str] = set()
    for line in records_jsonl:
        extra.update(a for a in json.loads(line)["values"] if a not in columns)
    columns += sorted(extra)
    records_jsonl.seek(0)
    out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    writer = csv.writer(out)
    writer.writerow(["record_id", "ingested_at", *columns])
    for line in records_jsonl:
        record = json.loads(line)
        writer.writerow([neutralise(record["record_id"]), record["ingested_at"],
                         *(neutralise(record["values"].get(c, "")) for c in columns)])
    out.flush()
    out.detach()


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would evaluate (=, +, -, @, tab, CR first) is prefixed with an apostrophe (OWASP)."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell

