"""Ingest dead letters: S3 notifications the ingest queue gave up on (after its redrive policy's maxReceiveCount
tries) -> the file's ingestion ends `failed` with its last error. A message that fails here stays in the dead-letter
queue and is tried again."""
import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from profilevault.ingestion.flow import LandingObject, mark_given_up
from profilevault.observability import logger, metrics, tracer
from profilevault.wiring import build_deps

deps = build_deps()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def handle_message(record: SQSRecord) -> None:
    for s3_record in json.loads(record.body).get("Records", []):
        mark_given_up(deps, LandingObject.from_s3_record(s3_record))  # counted as FilesIngested, Outcome failed


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event, context) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle_message, processor=processor,
                                    context=context)
