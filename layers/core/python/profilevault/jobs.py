"""Background work goes through the jobs queue to the refresh function (retries and a DLQ come with SQS)."""
from typing import Literal

from profilevault.domain.runs import Run, RunType, UnifyJob
from profilevault.wiring import Deps


def queue_job(deps: Deps, run_type: RunType, trigger: str, delay_seconds: int = 0, mode: Literal["full"] | None = None,
              source: str | None = None, task_token: str | None = None) -> Run:
    """Records a queued run (unification, refresh or source purge) and hands its job to the jobs queue. A Step
    Functions `task_token` rides in the job only (not in the run the API shows): the run reports back to the workflow
    waiting for it (functions/refresh)."""
    run = Run.queued(run_type, trigger, deps.now(), mode=mode, source=source)
    deps.runs.add(run)
    job = run.job()
    if task_token is not None:
        assert isinstance(job, UnifyJob)
        job = job.model_copy(update={"task_token": task_token})
    deps.sqs.send_message(QueueUrl=deps.jobs_queue_url, DelaySeconds=delay_seconds,
                          MessageBody=job.model_dump_json(exclude_none=True))
    return run
