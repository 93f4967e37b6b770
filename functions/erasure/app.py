"""Erasure steps: every task state of statemachines/erasure.asl.json invokes this function with
{"step", "request_id"} (plus the task token for `recompute`, the failed step and error for `mark_failed`)."""
from aws_lambda_powertools.utilities.parser import event_parser

from profilevault.observability import logger, tracer
from profilevault.privacy import erasure
from profilevault.privacy.erasure import StepEvent
from profilevault.wiring import build_deps

deps = build_deps()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=StepEvent)
def lambda_handler(event: StepEvent, context) -> dict:
    return erasure.run_step(deps, event)
