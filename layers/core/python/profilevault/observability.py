"""The one place Logger, Tracer and Metrics are created, and the one list of business metrics.

Logs never carry personal data: log surrogate IDs (ingestion IDs, hashed record references), counts and reason codes
only. Traces never carry what a function returns or raises (both may hold decrypted personal data). Metrics carry
counts and durations; their dimensions are a few fixed labels (an outcome, a run mode, a job type), never a tenant,
source, file, record or person, so they stay cheap and say nothing about anyone."""
import functools

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_xray_sdk.ext import boto_utils

# X-Ray's botocore instrumentation copies some request parameters of each AWS call into its subsegment (the SDK's
# parameter whitelist): for S3 the object key, prefix and copy source. Landing keys carry file names uploaders chose,
# which can name a person, so traces keep only the bucket. (Its http.client instrumentation, which would record the
# URL, does not see botocore's requests: urllib3 2 sends them without http.client's _send_request.)
_S3_PARAMETERS_NOT_TRACED = frozenset({"Key", "Prefix", "CopySource"})


def _trace_no_object_keys() -> None:
    for operation in boto_utils.whitelist["services"].get("s3", {}).get("operations", {}).values():
        traced = operation.get("request_parameters")
        if traced:
            operation["request_parameters"] = [p for p in traced if p not in _S3_PARAMETERS_NOT_TRACED]


_trace_no_object_keys()

NAMESPACE = "ProfileVault"
SERVICE = "profilevault"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# `@capture_method` on the main logic entry points: a subsegment per call, without its response or error, whatever
# POWERTOOLS_TRACER_CAPTURE_RESPONSE/ERROR say where the code runs (the template sets both to false as well).
# (Handlers: `@tracer.capture_lambda_handler(capture_response=False, capture_error=False)`.)
capture_method = functools.partial(tracer.capture_method, capture_response=False, capture_error=False)

# ------------------------------------------------------------------ business metrics (names and units)
# Emitted when an ingestion finishes (completed or failed), dimension Outcome.
FILES_INGESTED = "FilesIngested"
ROWS_STORED = "RowsStored"  # rows written (or, for a deletes file, removed)
ROWS_REJECTED = "RowsRejected"  # rows that could not become a record (see the rejection report)
ROWS_SUPPRESSED = "RowsSuppressed"  # rows left out because their person asked so (0 until suppression exists)
VALUE_WARNINGS = "ValueWarnings"  # values left out of a stored row (invalid e-mail, date, phone)
# Emitted when a unification run completes, dimension Mode (full | incremental).
UNIFICATION_RUNS = "UnificationRuns"
UNIFICATION_RUN_DURATION = "UnificationRunDuration"
RECORDS_READ = "RecordsRead"
PROFILES_WRITTEN = "ProfilesWritten"
# Emitted when the tenant's KMS key refuses us, dimension Flow (ingestion | api | job).
KEY_UNAVAILABLE = "KeyUnavailable"
# Emitted when a background job gives up (its message goes to the dead-letter queue), dimension JobType.
JOBS_FAILED = "JobsFailed"

# Emitted by every refresh: full snapshots it held instead of applying (an alarm on > 0 for hours tells an admin).
SNAPSHOTS_HELD = "SnapshotsHeld"

JOB_TYPES = ("unify", "purge_source", "refresh")


def ingestion_finished(outcome: str, counts: dict) -> None:
    """One file reached `completed` or `failed`; `counts` are the ingestion's row counts (missing ones are 0)."""
    _emit({"Outcome": outcome}, [
        (FILES_INGESTED, MetricUnit.Count, 1),
        (ROWS_STORED, MetricUnit.Count, counts.get("rows_stored", 0)),
        (ROWS_REJECTED, MetricUnit.Count, counts.get("rows_rejected", 0)),
        (ROWS_SUPPRESSED, MetricUnit.Count, counts.get("rows_suppressed", 0)),
        (VALUE_WARNINGS, MetricUnit.Count, counts.get("warnings", 0)),
    ])


def run_finished(mode: str, duration_ms: int, counts: dict) -> None:
    _emit({"Mode": mode}, [
        (UNIFICATION_RUNS, MetricUnit.Count, 1),
        (UNIFICATION_RUN_DURATION, MetricUnit.Milliseconds, duration_ms),
        (RECORDS_READ, MetricUnit.Count, counts.get("records_read", 0)),
        (PROFILES_WRITTEN, MetricUnit.Count, counts.get("profiles_written", 0)),
    ])


def key_unavailable(flow: str) -> None:
    _emit({"Flow": flow}, [(KEY_UNAVAILABLE, MetricUnit.Count, 1)])


def job_failed(job_type: str) -> None:
    _emit({"JobType": job_type if job_type in JOB_TYPES else "unknown"}, [(JOBS_FAILED, MetricUnit.Count, 1)])


def snapshots_held(count: int) -> None:
    _emit({}, [(SNAPSHOTS_HELD, MetricUnit.Count, count)])


def _emit(dimensions: dict[str, str], values: list[tuple[str, MetricUnit, float]]) -> None:
    """One EMF document, printed at once: each metric under `service` alone and under `service` plus `dimensions`.
    (Powertools' shared `metrics` applies one dimension set to everything a handler emits; these need their own.)"""
    emf = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    for name, unit, value in values:
        emf.add_metric(name=name, unit=unit, value=value)
    emf.add_dimensions(service=SERVICE, **dimensions)
    emf.flush_metrics()
