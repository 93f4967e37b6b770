"""Background work goes through the jobs queue to the refresh function (retries and a DLQ come with SQS)."""
import json

from profilevault.wiring import Deps

JOB_TYPES = frozenset({"unify", "purge_source", "refresh"})


def enqueue(deps: Deps, job: dict, delay_seconds: int = 0) -> None:
    assert job["type"] in JOB_TYPES
    deps.sqs.send_message(QueueUrl=deps.jobs_queue_url, MessageBody=json.dumps(job, sort_keys=True),
                          DelaySeconds=delay_seconds)
