"""An ingestion: one landing file on its way in, as stored and as the API shows it; a full snapshot's review
(`ingestion.snapshots`)."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from profilevault.domain.shown import Shown

IngestionStatus = Literal["processing", "completed", "failed"]
# Where a completed full snapshot stands (see ingestion.snapshots): pending (the next refresh applies it), held (an
# admin must apply it), approved (an admin did; the refresh queued with the approval applies it), applied,
# superseded (a later snapshot was applied first).
SnapshotState = Literal["pending", "held", "approved", "applied", "superseded"]
# A file the ingest queue gave up on fails with a reason that quotes its last error after this mark; the last error
# can name the tenant's KMS key, so only some roles see what follows it (ingestion.catalog).
LAST_ERROR_MARK = "; last error: "


class RowSpan(BaseModel):
    """A rejection that took several rows of the file (a stray quote swallows the rows after it)."""

    rows: tuple[int, int]  # first and last row number
    reason: str


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
    rows_suppressed: int = 0  # rows of erased people, refused (privacy.suppression)
    records_kept: int | None = None  # full snapshots: stored records that rejected rows named (not deleted)
    warnings: int = 0
    warning_reasons: dict[str, int] = Field(default_factory=dict)
    # Row numbers only, at most 100 of each (the counts stay exact)
    multi_row_rejections: list[RowSpan] | None = None
    duplicate_key_rows: list[tuple[int, int]] | None = None  # [earlier row, later row] with the same primary key
    attempts: int = 0
    started_at: str
    finished_at: str | None = None
    rejection_report: str | None = None  # the vault-bucket object of the sealed rejection report
    report_key: bytes | None = None  # its data key, wrapped by the tenant data key
    rejections_erased: int | None = None  # lines an erasure took out of the report (the person's)
    # Full snapshots
    snapshot: SnapshotState | None = None  # None: completed before snapshot states (reviewed when a refresh meets it)
    snapshot_reason: str | None = None  # why it is held (counts and IDs only)
    previous_rows: int | None = None  # rows stored by the snapshot it was compared with
    superseded_by: str | None = None
    approved_at: str | None = None
    applied_at: str | None = None

    @property
    def position(self) -> str:
        """Where it stands among the ingestions, newest first (what paging cursors carry)."""
        return f"{self.started_at}#{self.id}"


class IngestionView(Shown):
    """What `GET /v1/ingestions[/{id}]` shows: no wrapped key, no object name. Absent values are left out."""

    id: str
    source: str
    file: str | None = None  # the uploader's file name: for admins and privacy officers only (ingestion.catalog)
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
    rows_suppressed: int = 0
    rejections_erased: int | None = None
    records_kept: int | None = None
    warnings: int
    attempts: int
    snapshot: SnapshotState | None = None
    snapshot_reason: str | None = None
    previous_rows: int | None = None
    superseded_by: str | None = None
    started_at: str
    finished_at: str | None = None
    approved_at: str | None = None
    applied_at: str | None = None
    warning_reasons: dict[str, int]
    multi_row_rejections: list[RowSpan] | None = None
    duplicate_key_rows: list[tuple[int, int]] | None = None
    has_rejection_report: bool

    @classmethod
    def of(cls, ingestion: Ingestion) -> "IngestionView":
        return cls(**ingestion.model_dump(exclude={"rejection_report", "report_key"}),
                   has_rejection_report=bool(ingestion.rejection_report))


class IngestionPage(BaseModel):
    items: list[IngestionView]
    next_cursor: str | None


class HeldSnapshot(Shown):
    """A full snapshot a refresh did not apply (held, or approved and not yet applied): IDs, reason and counts."""

    ingestion_id: str
    state: SnapshotState
    reason: str | None = None
    started_at: str
    rows_read: int
    rows_stored: int
    rows_rejected: int
    records_kept: int
    previous_rows: int | None = None
    apply_with: str | None = None  # the request that applies it, while it is held

    @classmethod
    def of(cls, snapshot: Ingestion) -> "HeldSnapshot":
        assert snapshot.snapshot is not None  # reviewed
        return cls(ingestion_id=snapshot.id, state=snapshot.snapshot, reason=snapshot.snapshot_reason,
                   started_at=snapshot.started_at, rows_read=snapshot.rows_read, rows_stored=snapshot.rows_stored,
                   rows_rejected=snapshot.rows_rejected, records_kept=snapshot.records_kept or 0,
                   previous_rows=snapshot.previous_rows,
                   apply_with=f"POST /v1/ingestions/{snapshot.id}/apply" if snapshot.snapshot == "held" else None)


class SnapshotApproval(BaseModel):
    """What `POST /v1/ingestions/{id}/apply` answers: the snapshot approved and the refresh that applies it."""

    ingestion_id: str
    snapshot: Literal["approved"]
    refresh_id: str
