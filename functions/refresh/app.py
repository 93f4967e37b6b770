"""Refresh: the hourly schedules (a refresh; the audit anchor) and the jobs queue (unification runs, source purges,
refreshes requested by API)."""
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from profilevault import observability, refresh
from profilevault.audit import verification
from profilevault.config import get_settings
from profilevault.domain.runs import JOB, Job, PurgeSourceJob, RefreshJob, UnifyJob
from profilevault.errors import KeyUnavailable
from profilevault.observability import logger, metrics, tracer
from profilevault.profiles import runs
from profilevault.wiring import build_deps

settings = get_settings()
deps = build_deps(settings)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def run_job(record: SQSRecord) -> None:
    job = JOB.validate_json(record.body)  # not a job: fails, and after its tries lands in the DLQ
    try:
        dispatch(job)
    except Exception as error:
        if isinstance(error, KeyUnavailable):
            observability.key_unavailable("job")
        # The jobs queue's redrive policy moves a job to its DLQ after this many tries (the template sets both).
        tries = settings.jobs_max_receives
        if int(record.attributes.approximate_receive_count) >= tries:
            runs.mark_run_failed(deps, job.run_id, f"{type(error).__name__} after {tries} tries")
            observability.job_failed(job.type)
        raise


def dispatch(job: Job) -> None:
    match job:
        case UnifyJob():
            runs.run_unification(deps, job.run_id)
        case PurgeSourceJob():
            refresh.purge_source(deps, job.source, job.run_id)
        case RefreshJob():
            refresh.run_refresh(deps, job.run_id)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event, context):
    if event.get("task") == "anchor-audit":  # the hourly AuditAnchor schedule (its Input)
        return verification.anchor_head(deps)
    if event.get("source") == "aws.events":  # the hourly refresh: through the jobs queue, like every other run
        return refresh.on_schedule(deps).shown()
    return process_partial_response(event=event, record_handler=run_job, processor=processor, context=context)
