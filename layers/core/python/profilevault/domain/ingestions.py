"""An ingestion: one landing file on its way in, as stored and as the API shows it."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from profilevault.domain.shown import Shown

IngestionStatus = Literal["processing", "completed", "failed"]


class Ingestion(BaseModel):
    """The stored ingestion record (`storage.ingestions`). Counts are filled in as the file is read."""

    model_config = ConfigDict(extra="ignore")

    id: str
    source: str  # the source its path names (before the path is checked: what the key says)
    file: str
    status: IngestionStatus
    kind: Literal["full", "incremental"] | None = None
    operation: Literal["upserts", "deletes"] | None = None
    reason: str | None = None  # why a file failed as a whole
    last_error: str | None = None  # why the last try stopped, while a retry is pending
    rows_read: int = 0
    rows_stored: int = 0
    rows_new: int | None = None
    rows_deleted: int | None = None
    rows_rejected: int = 0
    warnings: int = 0
    warning_reasons: dict[str, int] = Field(default_factory=dict)
    attempts: int = 0
    started_at: str
    finished_at: str | None = None
    rejection_report: str | None = None  # the vault-bucket object of the sealed rejection report
    report_key: bytes | None = None  # its data key, wrapped by the tenant data key

    @property
    def position(self) -> str:
        """Where it stands among the ingestions, newest first (what paging cursors carry)."""
        return f"{self.started_at}#{self.id}"


class IngestionView(Shown):
    """What `GET /v1/ingestions[/{id}]` shows: no wrapped key, no object name. Absent values are left out."""

    id: str
    source: str
    file: str
    status: IngestionStatus
    kind: Literal["full", "incremental"] | None = None
    operation: Literal["upserts", "deletes"] | None = None
    reason: str | None = None
    last_error: str | None = None
    rows_read: int
    rows_stored: int
    rows_new: int | None = None
    rows_deleted: int | None = None
    rows_rejected: int
    warnings: int
    attempts: int
    started_at: str
    finished_at: str | None = None
    warning_reasons: dict[str, int]
    has_rejection_report: bool

    @classmethod
    def of(cls, ingestion: Ingestion) -> "IngestionView":
        return cls(**ingestion.model_dump(exclude={"rejection_report", "report_key"}),
                   has_rejection_report=bool(ingestion.rejection_report))


class IngestionPage(BaseModel):
    items: list[IngestionView]
    next_cursor: str | None
