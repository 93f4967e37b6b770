"""Runs (unification runs, refreshes, source purges) and the jobs that carry them through the jobs queue.

A run's status only moves forward: queued -> running -> completed, and queued or running -> failed or superseded
(running -> running again when a job is retried after a crash). Its writes are conditional on that
(`storage.runs`), so a retried or late job can never move a finished run back."""
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from profilevault.domain.ingestions import HeldSnapshot
from profilevault.domain.shown import Shown

RunType = Literal["unify", "refresh", "purge_source"]
RunStatus = Literal["queued", "running", "completed", "failed", "superseded"]

# status -> the statuses a run may have before it gets it
MAY_FOLLOW: dict[str, frozenset[str]] = {
    "running": frozenset({"queued", "running"}),
    "completed": frozenset({"running"}),
    "failed": frozenset({"queued", "running"}),
    "superseded": frozenset({"queued", "running"}),
}
FINAL = frozenset({"completed", "failed", "superseded"})


class RunCounts(Shown):
    """What a finished run did (records and profiles are counts, never contents)."""

    model_config = ConfigDict(extra="forbid")

    records: int = 0
    profiles: int = 0
    merged: int = 0
    split: int = 0
    new: int = 0
    unchanged: int = 0
    records_read: int = 0
    profiles_written: int = 0
    profiles_deleted: int = 0
    suggestions: int = 0
    records_deleted: int | None = None  # refreshes and source purges
    snapshots_held: int | None = None  # refreshes: full snapshots held instead of applied


class Run(Shown):
    """A unification run, a refresh or a source purge, as stored and as the API shows it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: RunType
    status: RunStatus
    trigger: str  # api, schedule, ingestion, source removed
    queued_at: str
    mode: Literal["full", "incremental"] | None = None
    source: str | None = None  # the source a purge removes
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    counts: RunCounts | None = None
    held_snapshots: list[HeldSnapshot] | None = None  # refreshes: the snapshots they held (ingestion.snapshots)
    reason: str | None = None  # why it failed

    @classmethod
    def queued(cls, run_type: RunType, trigger: str, now: str, mode: Literal["full"] | None = None,
               source: str | None = None) -> "Run":
        prefix = "ref_" if run_type == "refresh" else "run_"
        return cls(id=prefix + uuid.uuid4().hex[:20], type=run_type, status="queued", trigger=trigger,
                   queued_at=now, mode=mode, source=source)

    @property
    def position(self) -> str:
        """Where it stands among the runs, newest first (what paging cursors carry)."""
        return f"{self.queued_at}#{self.id}"

    def job(self) -> "Job":
        if self.type == "purge_source":
            assert self.source is not None
            return PurgeSourceJob(type="purge_source", run_id=self.id, source=self.source)
        if self.type == "refresh":
            return RefreshJob(type="refresh", run_id=self.id)
        return UnifyJob(type="unify", run_id=self.id, mode="full" if self.mode == "full" else None)

    def shown(self) -> dict:
        """As stored and shown: without the values it does not have."""
        return self.model_dump(mode="json", exclude_none=True)


class RunPage(BaseModel):
    items: list[Run]
    next_cursor: str | None


class UnifyJob(BaseModel):
    type: Literal["unify"]
    run_id: str
    mode: Literal["full"] | None = None  # None: incremental where the saved state allows


class PurgeSourceJob(BaseModel):
    type: Literal["purge_source"]
    run_id: str
    source: str


class RefreshJob(BaseModel):
    type: Literal["refresh"]
    run_id: str


Job = Annotated[UnifyJob | PurgeSourceJob | RefreshJob, Field(discriminator="type")]
JOB: TypeAdapter[Job] = TypeAdapter(Job)  # JOB.validate_json(message body) -> the job, by its "type"
