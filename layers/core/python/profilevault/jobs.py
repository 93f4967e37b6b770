"""Background work goes through the jobs queue to the refresh function (retries and a DLQ come with SQS)."""
from typing import Literal

from profilevault.domain.runs import Run, RunType
from profilevault.wiring import Deps


def queue_job(deps: Deps, run_type: RunType, trigger: str, delay_seconds: int = 0, mode: Literal["full"] | None = None,
              source: str | None = None) -> Run:
    """Records a queued run (unification, refresh or source purge) and hands its job to the jobs queue."""
    run = Run.queued(run_type, trigger, deps.now(), mode=mode, source=source)
    deps.runs.add(run)
    deps.sqs.send_message(QueueUrl=deps.jobs_queue_url, DelaySeconds=delay_seconds,
                          MessageBody=run.job().model_dump_json(exclude_none=True))
    return run
