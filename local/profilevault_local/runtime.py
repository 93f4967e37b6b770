"""Run Lambda handlers in-process: load them from their code folder, give them a Lambda-like context, serve SQS
event source mappings the way Lambda does (batches, partial batch failures, retries), fire schedules, and route
moto-initiated invokes (lambda invoke API, Step Functions tasks, S3 -> Lambda) to the same handlers."""
import base64
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profilevault_local.stack import FunctionSpec, QueueMapping, Schedule

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]


def load_handler(code_dir: str | Path, handler: str) -> Handler:
    """Import `<code_dir>/<module path>.py` by file path under a module name unique to code_dir (every function
    has its own `app.py`) and return the handler function named by `module.function`."""
    code_dir = Path(code_dir).resolve()
    module_path, _, function_name = handler.rpartition(".")
    if not module_path or not function_name:
        raise ValueError(f"handler {handler!r} is not <module>.<function>")
    file = code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
    if not file.is_file():
        raise FileNotFoundError(f"handler module {file} does not exist")
    digest = hashlib.sha1(str(code_dir).encode(), usedforsecurity=False).hexdigest()[:10]
    safe_dir = re.sub(r"\W", "_", code_dir.name)
    module_name = f"_pv_lambda_{safe_dir}_{digest}_{module_path.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    # Lambda puts the code folder on sys.path, so a handler may import its sibling modules.
    sys.path.insert(0, str(code_dir))
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(code_dir))
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise AttributeError(f"{file} has no callable {function_name!r}")
    return fn


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    """One warm container: a handler and a lock, because a Lambda container runs one event at a time (and
    handlers keep per-event state on module globals, e.g. the Powertools resolver's current event)."""

    spec: FunctionSpec
    handler: Handler
    lock: threading.RLock = field(default_factory=threading.RLock)

    def invoke(self, event: Any) -> Any:
        context = LambdaContext(function_name=self.spec.name, invoked_function_arn=self.spec.arn,
                                memory_limit_in_mb=self.spec.memory_mb, timeout_seconds=self.spec.timeout)
        with self.lock:
            return self.handler(event, context)


def merged_environment(functions: Iterable[FunctionSpec]) -> dict[str, str]:
    """All functions run in one process, so they share one environment (they share the template's Globals);
    a variable two functions set differently is reported, and the first value wins."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for spec in functions:
        for key, value in spec.env.items():
            if key in merged and merged[key] != value:
                log.warning("functions %s and %s set %s differently; using %s's value",
                            owner[key], spec.logical_id, key, owner[key])
                continue
            merged.setdefault(key, value)
            owner.setdefault(key, spec.logical_id)
    return merged


def load_functions(functions: Iterable[FunctionSpec],
                   layer_python_dirs: Iterable[Path] = ()) -> dict[str, LocalFunction]:
    """Load every function's handler (set the environment first: handlers read their settings at import)."""
    for layer in layer_python_dirs:
        # Lambda puts each layer's python/ folder (/opt/python) on sys.path.
        python_dir = str(layer)
        if Path(python_dir).is_dir() and python_dir not in sys.path:
            sys.path.append(python_dir)
    return {spec.logical_id: LocalFunction(spec, load_handler(spec.code_dir, spec.handler)) for spec in functions}


# ------------------------------------------------------------------ moto-initiated invokes

_original_invoke_lambda: Callable | None = None
_local_functions: dict[str, LocalFunction] = {}  # function name -> function; what the patched moto consults


def install_invoke_hook(functions: Iterable[LocalFunction]) -> None:
    """Make moto run these functions in-process wherever it would start a Docker container.

    Replaces the private `moto.awslambda.models.LambdaFunction._invoke_lambda` (pinned moto 5.2.5); functions
    not registered here keep moto's own behaviour."""
    global _original_invoke_lambda
    from moto.awslambda.models import LambdaFunction

    for fn in functions:
        _local_functions[fn.spec.name] = fn
    if _original_invoke_lambda is not None:
        return
    _original_invoke_lambda = LambdaFunction._invoke_lambda

    def _invoke_lambda(self, event=None):
        fn = _local_functions.get(self.function_name)
        if fn is None:
            return _original_invoke_lambda(self, event)
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        try:
            result = fn.invoke(event if event is not None else {})
        except Exception as exc:  # Lambda turns any handler exception into an error payload
            log.warning("function %s raised %s", fn.spec.logical_id, type(exc).__name__)
            return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}), True, ""
        return json.dumps(result, default=str), False, ""

    LambdaFunction._invoke_lambda = _invoke_lambda


def uninstall_invoke_hook() -> None:
    global _original_invoke_lambda
    from moto.awslambda.models import LambdaFunction

    if _original_invoke_lambda is not None:
        LambdaFunction._invoke_lambda = _original_invoke_lambda
        _original_invoke_lambda = None
    _local_functions.clear()


# ------------------------------------------------------------------ SQS event source mappings

def sqs_event(messages: list[dict], queue_arn: str, region: str) -> dict:
    """The event Lambda's SQS poller passes to a function, from receive_message output."""
    records = []
    for m in messages:
        records.append({
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": dict(m.get("Attributes", {})),
            "messageAttributes": {name: _lambda_message_attribute(value)
                                  for name, value in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        })
    return {"Records": records}


def _lambda_message_attribute(value: dict) -> dict:
    out = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def _is_s3_test_event(body: str) -> bool:
    try:
        return json.loads(body).get("Event") == "s3:TestEvent"
    except (ValueError, AttributeError):
        return False


def failed_message_ids(result: Any, message_ids: list[str], reports_item_failures: bool) -> set[str]:
    """Which messages of a batch failed, by Lambda's rules for a handler's return value."""
    if not reports_item_failures or result is None:
        return set()
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if not failures:
        return set()
    ids = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
    if None in ids or "" in ids or not ids <= set(message_ids):
        # Lambda treats a malformed or unknown itemIdentifier as a failure of the whole batch.
        return set(message_ids)
    return ids


def retry_delay_seconds(receive_count: int) -> int:
    """Back-off before a failed message is visible again: short, so local retries happen while a user watches."""
    return min(30, 5 * 2 ** max(0, receive_count - 1))


@dataclass(frozen=True)
class Delivery:
    """What became of one batch: the function's response (None if it was not called or raised), the IDs of the
    messages that failed, and the exception the function raised, if any."""

    response: Any = None
    failed: frozenset[str] = frozenset()
    error: Exception | None = None


def receive_batch(sqs, mapping: QueueMapping, wait_seconds: int = 1) -> list[dict]:
    """One receive of Lambda's SQS poller: up to the mapping's batch size, with every attribute (the receive count
    among them)."""
    return sqs.receive_message(QueueUrl=mapping.queue_url, MaxNumberOfMessages=min(10, mapping.batch_size),
                               WaitTimeSeconds=wait_seconds, AttributeNames=["All"],
                               MessageAttributeNames=["All"]).get("Messages", [])


def deliver_batch(sqs, mapping: QueueMapping, fn: LocalFunction, messages: list[dict], region: str,
                  retry_delay: Callable[[int], int] | None) -> Delivery:
    """Hand received messages to the function as Lambda's SQS poller does: S3 test events are deleted unseen, the
    rest go in one event; what succeeded is deleted, what failed stays on the queue for a retry. A failed message
    is visible again after `retry_delay(receive count)` seconds, or, with None, after the queue's visibility timeout
    (Lambda's own behaviour); once it has been received maxReceiveCount times the queue's redrive policy moves it
    to the dead-letter queue. The local pollers and the tests' harness both deliver through here."""
    to_function = []
    for m in messages:
        if _is_s3_test_event(m["Body"]):
            sqs.delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=m["ReceiptHandle"])
        else:
            to_function.append(m)
    if not to_function:
        return Delivery()
    ids = [m["MessageId"] for m in to_function]
    response, error = None, None
    try:
        response = fn.invoke(sqs_event(to_function, mapping.queue_arn, region))
        failed = failed_message_ids(response, ids, mapping.reports_batch_item_failures)
    except Exception as exc:  # a raised exception fails the whole batch, as in Lambda
        log.warning("function %s raised %s; %d message(s) will be retried", fn.spec.logical_id,
                    type(exc).__name__, len(to_function))
        error, failed = exc, set(ids)
    for m in to_function:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=m["ReceiptHandle"])
        elif retry_delay is not None:
            count = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            sqs.change_message_visibility(QueueUrl=mapping.queue_url, ReceiptHandle=m["ReceiptHandle"],
                                          VisibilityTimeout=retry_delay(count))
    log.info("queue batch for %s: %d ok, %d failed", fn.spec.logical_id, len(to_function) - len(failed),
             len(failed))
    return Delivery(response=response, failed=frozenset(failed), error=error)


def process_batch(sqs, mapping: QueueMapping, fn: LocalFunction, region: str, wait_seconds: int = 1) -> int:
    """Receive one batch from the mapping's queue and deliver it, retrying failures after a short back-off (so a
    user sees them happen). Returns the number of messages received (0 when the queue had nothing visible)."""
    received = receive_batch(sqs, mapping, wait_seconds)
    if received:
        deliver_batch(sqs, mapping, fn, received, region, retry_delay=retry_delay_seconds)
    return len(received)


def drain_queue(sqs, mapping: QueueMapping, fn: LocalFunction, region: str, max_batches: int = 1000) -> int:
    """Process batches until the queue shows nothing visible (for tests: deterministic, no thread)."""
    total = 0
    for _ in range(max_batches):
        n = process_batch(sqs, mapping, fn, region, wait_seconds=0)
        if not n:
            break
        total += n
    return total


def poll_queue(stop: threading.Event, sqs, mapping: QueueMapping, fn: LocalFunction, region: str) -> None:
    """Loop of Lambda's SQS poller until stop is set."""
    while not stop.is_set():
        try:
            process_batch(sqs, mapping, fn, region, wait_seconds=1)
        except Exception as exc:  # keep polling; a local stack should survive a hiccup
            log.warning("poller for %s: %s", mapping.function_logical_id, type(exc).__name__)
            stop.wait(1)


# ------------------------------------------------------------------ schedules

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of a rate(...) expression; None for cron(...), which the local stack doesn't fire."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    unit = match.group(2).rstrip("s")
    return int(match.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[unit]


def scheduled_event(schedule: Schedule, account_id: str, region: str) -> Any:
    if schedule.input is not None:
        return schedule.input
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": account_id, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [schedule.rule_arn], "detail": {},
    }


def run_schedule(stop: threading.Event, schedule: Schedule, fn: LocalFunction, account_id: str, region: str,
                 period_seconds: float) -> None:
    """Fire the function every period (first run one period after start, as EventBridge does)."""
    while not stop.wait(period_seconds):
        try:
            fn.invoke(scheduled_event(schedule, account_id, region))
            log.info("schedule %s fired %s", schedule.logical_id, fn.spec.logical_id)
        except Exception as exc:  # EventBridge just tries again next period
            log.warning("schedule %s: %s raised %s", schedule.logical_id, fn.spec.logical_id, type(exc).__name__)


def apply_environment(env: dict[str, str]) -> None:
    os.environ.update(env)
