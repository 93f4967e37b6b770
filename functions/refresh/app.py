"""Refresh: the hourly schedule and the jobs queue (unification runs, source purges, refreshes requested by API)."""
import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from profilevault import observability, refresh
from profilevault.errors import KeyUnavailable
from profilevault.observability import logger, metrics, tracer
from profilevault.profiles import runs
from profilevault.wiring import build_deps

deps = build_deps()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


MAX_RECEIVES = 3  # the jobs queue's redrive policy moves a job to its DLQ after this many tries


def run_job(record: SQSRecord) -> None:
    job = json.loads(record.body)
    try:
        dispatch(job)
    except Exception as error:
        if isinstance(error, KeyUnavailable):
            observability.key_unavailable("job")
        if int(record.attributes.approximate_receive_count) >= MAX_RECEIVES:
            runs.mark_run_failed(deps, job["run_id"], f"{type(error).__name__} after {MAX_RECEIVES} tries")
            observability.job_failed(job["type"])
        raise


def dispatch(job: dict) -> None:
    if job["type"] == "unify":
        runs.run_unification(deps, job["run_id"])
    elif job["type"] == "purge_source":
        refresh.purge_source(deps, job["source"], job["run_id"])
    elif job["type"] == "refresh":
        refresh.run_refresh(deps, job["run_id"])
    else:
        logger.error("unknown job type; dropped", extra={"job_type": job["type"]})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event, context):
    if event.get("source") == "aws.events":  # the schedule: through the jobs queue, like every other run
        return refresh.queue_refresh(deps, trigger="schedule")
    return process_partial_response(event=event, record_handler=run_job, processor=processor, context=context)
