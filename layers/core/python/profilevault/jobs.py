"""Background work goes through the jobs queue to the refresh function (retries and a DLQ come with SQS)."""
import json
import uuid

from profilevault.storage import profile_store
from profilevault.wiring import Deps, profile_tables

JOB_TYPES = frozenset({"unify", "purge_source", "refresh"})


def enqueue(deps: Deps, job: dict, delay_seconds: int = 0) -> None:
    assert job["type"] in JOB_TYPES
    deps.sqs.send_message(QueueUrl=deps.jobs_queue_url, MessageBody=json.dumps(job, sort_keys=True),
                          DelaySeconds=delay_seconds)


def queue_job(deps: Deps, job_type: str, trigger: str, delay_seconds: int = 0, task_token: str | None = None,
              **details) -> dict:
    """Records a queued run (unification, refresh or source purge) and hands its job to the jobs queue. A Step
    Functions `task_token` rides in the job only (not in the run record the API shows): the run reports back to
    the workflow waiting for it."""
    prefix = "ref_" if job_type == "refresh" else "run_"
    run = {"id": prefix + uuid.uuid4().hex[:20], "type": job_type, "status": "queued", "trigger": trigger,
           "queued_at": deps.now(), **details}
    profile_store.put_run(deps.dynamodb, profile_tables(deps), deps.tenant, run)
    job = {"type": job_type, "run_id": run["id"], **details}
    if task_token:
        job["task_token"] = task_token
    enqueue(deps, job, delay_seconds=delay_seconds)
    return run
