"""Ingest: SQS messages carrying S3 ObjectCreated events for the landing bucket -> one ingestion per file.
A failed message (tenant key unavailable, throttling) is reported back so SQS delivers it again."""
import json
from dataclasses import asdict

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from profilevault.aws import make_clients
from profilevault.config import get_settings
from profilevault.ingestion.flow import LandingObject, ingest_landing_object
from profilevault.observability import logger, metrics, tracer
from profilevault.wiring import build_deps

settings = get_settings()
clients = make_clients()
deps = build_deps(settings, clients)
# A batch whose every message failed is still answered with the failures (not an exception), so SQS
# retries exactly those messages and no stack trace reaches the logs.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
idempotency = IdempotencyConfig(expires_after_seconds=7 * 24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=clients.dynamodb)


@idempotent_function(data_keyword_argument="landing_object", persistence_store=persistence, config=idempotency)
def ingest_once(landing_object: dict) -> dict:
    ingestion = ingest_landing_object(deps, LandingObject(**landing_object))
    return {"id": ingestion.id, "status": ingestion.status}


def handle_message(record: SQSRecord) -> None:
    notification = json.loads(record.body)
    if notification.get("Event") == "s3:TestEvent":
        return
    for s3_record in notification.get("Records", []):
        landing = LandingObject.from_s3_record(s3_record)
        ingest_once(landing_object=asdict(landing))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event, context) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=handle_message, processor=processor,
                                    context=context)
