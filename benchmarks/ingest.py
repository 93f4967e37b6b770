"""Ingest benchmarks: CPU pipeline rows/s per core, AWS calls per 1,000 rows, peak memory 10k vs 1M rows.

    .venv/bin/python -m benchmarks.ingest cpu --rows 50000 --repeat 7  # read + map + normalise + seal, no AWS I/O
    .venv/bin/python -m benchmarks.ingest calls --rows 1000 10000  # the real ingest under moto: calls per service
    .venv/bin/python -m benchmarks.ingest memory --rows 10000 1000000  # peak RSS of the CPU pipeline per size

Rows are generated lazily (a file of any size never sits in memory), typical columns: id, email, first name, last
name, phone, birth date. CPU time is process time on one core (the pipeline is single-threaded), which is steadier
than wall time on a shared machine. Results print as JSON lines.
"""
import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-central-1"
FIELDS = {"mail": "email", "given": "first_name", "family": "last_name", "tel": "phone", "born": "birth_date"}
FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hans", "Jürgen", "Zoë"]
LAST = ["Schmidt", "Müller", "Meyer", "Weber", "Wagner", "Becker", "Schulz", "Hoffmann", "O'Brien", "van Dijk"]


class GeneratedCsv(io.RawIOBase):
    """A CSV of `rows` rows produced on demand: reading it never holds more than one chunk."""

    def __init__(self, rows: int, seed: int = 7):
        self._lines = self._generate(rows, seed)
        self._buffer = b""

    @staticmethod
    def _generate(rows, seed):
        # Cheap and deterministic, so the generator's own cost hardly counts in the pipeline's CPU time.
        yield b"id,mail,given,family,tel,born\n"
        chunk = []
        for i in range(rows):
            first, last = FIRST[(i + seed) % len(FIRST)], LAST[(i * 7 + seed) % len(LAST)]
            phone = f"+49151{10_000_000 + i * 37 % 89_999_999}" if i % 10 else f"030 {1_000_000 + i % 8_999_999}"
            mail = f"{first}.{last}{i}@example.org".replace(" ", "").replace("'", "")
            chunk.append(f"C{i},{mail},{first},{last},{phone},19{40 + i % 59}-0{1 + i % 9}-1{i % 10}\n")
            if len(chunk) == 1000:
                yield "".join(chunk).encode()
                chunk = []
        if chunk:
            yield "".join(chunk).encode()

    def readable(self):
        return True

    def readinto(self, target):
        while not self._buffer:
            try:
                self._buffer = next(self._lines)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n


def _aws_env():
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION})
    os.environ.pop("AWS_ENDPOINT_URL", None)


def cpu_pipeline(rows: int, repeat: int = 1) -> dict:
    """The ingest's per-row work (read, map, validate, normalise, seal with per-record keys and blind indexes)
    with a real keyring over moto's KMS; only the DynamoDB writes are left out."""
    import boto3
    from moto import mock_aws

    from profilevault.domain.sources import SourceSpec
    from profilevault.ingestion.mapping import map_row
    from profilevault.ingestion.readers import RowRejection, iter_rows
    from profilevault.keys import vault
    from profilevault.keys.keyring import TenantKeyring
    from profilevault.storage.keyring import KeyringRepository
    from profilevault.storage.records import record_address

    _aws_env()
    with mock_aws():  # only to set the keyring up: its keys are then cached, and the loop makes no AWS call
        kms, ddb = boto3.client("kms"), boto3.client("dynamodb")
        ddb.create_table(TableName="control", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
        keyring = TenantKeyring(tenant_id="bench", kms=kms, store=KeyringRepository(ddb, "control", "bench"),
                                default_kms_key_arn=kms.create_key()["KeyMetadata"]["Arn"], cache_seconds=3600)
        keyring.index_key()
    spec = SourceSpec(format="csv", primary_key="id", fields=FIELDS)
    timings = []
    for _ in range(repeat):
        stored = rejected = 0
        started = time.process_time()
        for row in iter_rows(io.BufferedReader(GeneratedCsv(rows)), spec):
            mapped = row if isinstance(row, RowRejection) else map_row(row, spec)
            if isinstance(mapped, RowRejection):
                rejected += 1
                continue
            token = vault.record_token(keyring, "crm", mapped.record_id)
            vault.seal_record(keyring, record_address("bench", "crm", token), token, mapped.record_id,
                              mapped.attributes, [], "ing_bench", "now", mapped.row_number)
            stored += 1
        timings.append(time.process_time() - started)
    best, median = min(timings), statistics.median(timings)
    return {"benchmark": "ingest_cpu_pipeline", "rows": rows, "repeat": repeat, "stored": stored,
            "rejected": rejected, "cpu_seconds_best": round(best, 2), "rows_per_s_per_core": round(rows / best),
            "rows_per_s_per_core_median": round(rows / median), "kms_calls": keyring.kms_calls,
            "peak_rss_mib": round(_peak_rss_mib(), 1)}


def aws_calls(rows: int) -> dict:
    """The real ingest (template.yaml deployed in moto, real handler path) with every AWS call counted."""
    from collections import Counter

    import boto3
    from moto import mock_aws

    from profilevault.aws import make_clients
    from profilevault.config import get_settings
    from profilevault.domain.sources import SourceSpec
    from profilevault.ingestion.flow import LandingObject, ingest_landing_object
    from profilevault.wiring import build_deps
    from profilevault_local.stack import deploy

    _aws_env()
    calls: Counter = Counter()
    with mock_aws():
        deployed = deploy(ROOT / "template.yaml", REGION)
        for spec in deployed.functions.values():
            os.environ.update(spec.env)
        get_settings.cache_clear()
        clients = make_clients()
        deps = build_deps(get_settings(), clients)
        for client in (clients.s3, clients.dynamodb, clients.sqs, clients.kms):
            client.meta.events.register("before-call", lambda model, **_: calls.update(
                [f"{model.service_model.service_name}:{model.name}"]))
        deps.sources.put("crm", SourceSpec(format="csv", primary_key="id", fields=FIELDS), "now")
        body = io.BufferedReader(GeneratedCsv(rows)).read()
        s3 = boto3.client("s3")
        etag = s3.put_object(Bucket=deployed.buckets["LandingBucket"], Key="sources/crm/full/bench.csv",
                             Body=body)["ETag"].strip('"')
        started = time.perf_counter()
        result = ingest_landing_object(deps, LandingObject(deployed.buckets["LandingBucket"],
                                                           "sources/crm/full/bench.csv", etag, "1"))
        seconds = time.perf_counter() - started
    by_service = Counter()
    for name, count in calls.items():
        by_service[name.split(":")[0]] += count
    return {"benchmark": "ingest_aws_calls", "rows": rows, "status": result.status,
            "rows_stored": result.rows_stored, "seconds_in_moto": round(seconds, 2),
            "kms_calls": by_service["kms"], "dynamodb_calls": by_service["dynamodb"],
            "dynamodb_calls_per_1000_rows": round(by_service["dynamodb"] * 1000 / rows, 1),
            "s3_calls": by_service["s3"], "calls": dict(sorted(calls.items()))}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(rows: int) -> dict:
    """Peak RSS of a fresh process running the CPU pipeline over `rows` rows."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.ingest", "cpu", "--rows", str(rows)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    result = json.loads(out)
    return {"benchmark": "ingest_peak_memory", "rows": rows, "peak_rss_mib": result["peak_rss_mib"],
            "rows_per_s_per_core": result["rows_per_s_per_core"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("cpu", "calls", "memory"))
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--repeat", type=int, default=1, help="cpu: runs per size; best and median are reported "
                        "(best measures the code, median shows the machine's noise)")
    args = parser.parse_args()
    for rows in args.rows:
        result = cpu_pipeline(rows, args.repeat) if args.what == "cpu" else \
            {"calls": aws_calls, "memory": memory}[args.what](rows)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
