"""Privacy worker: the requests queue (a message carries one request ID) -> locate the subject, build the package or
start the erasure workflow. A request whose message fails its last try is marked failed with the step."""
import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from profilevault.config import get_settings
from profilevault.errors import Conflict, NotFound
from profilevault.observability import logger, metrics, tracer
from profilevault.privacy import fulfil
from profilevault.wiring import build_deps

deps = build_deps()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def handle_message(record: SQSRecord) -> None:
    request_id = json.loads(record.body)["request_id"]
    try:
        fulfil.fulfil_request(deps, request_id)
    except (Conflict, NotFound) as moved:
        # Cancelled or moved on by another delivery meanwhile, or not ours: nothing to redo.
        logger.info("request left as it is", extra={"request_id": request_id, "problem": moved.type})
    except Exception as error:
        # The requests queue's redrive policy moves a message to its DLQ after this many tries (the template sets both).
        tries = get_settings().requests_max_receives
        if int(record.attributes.approximate_receive_count) >= tries:
            fulfil.fail(deps, request_id, f"{type(error).__name__} after {tries} tries")
        raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event, context) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle_message, processor=processor,
                                    context=context)
