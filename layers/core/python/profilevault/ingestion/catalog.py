"""Sources, their records and their ingestions, as the API shows them."""
from pydantic import BaseModel

from profilevault.api import cursors
from profilevault.api.access import ERROR_DETAIL_READERS, FILE_NAME_READERS, Role
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.domain.ingestions import LAST_ERROR_MARK, HeldSnapshot, Ingestion, IngestionPage, IngestionView
from profilevault.domain.sources import Source, SourceSpec, check_source_name
from profilevault.errors import NotFound
from profilevault.ingestion import flow as ingestion_logic
from profilevault.ingestion import snapshots
from profilevault.keys import vault
from profilevault.observability import capture_method
from profilevault.wiring import Deps


class SourceView(Source):
    """A registered source with the number of records stored for it, and its newest full snapshot while that is
    held (or approved and not yet applied): it deletes nothing until an admin applies it."""

    record_count: int
    held_snapshot: HeldSnapshot | None = None


class RecordView(BaseModel):
    """One stored record, decrypted (admins only)."""

    source: str
    record_id: str
    attributes: dict[str, str]
    warnings: list[dict[str, str]]
    ingestion_id: str
    ingested_at: str


def register_source(deps: Deps, name: str, spec: SourceSpec, actor: Actor) -> tuple[SourceView, bool]:
    check_source_name(name)
    created = deps.sources.put(name, spec, deps.now())
    trail.record(deps, "source.registered" if created else "source.updated", actor, {"source": name},
                 {"fields": len(spec.fields)})
    return describe_source(deps, name), created


def describe_source(deps: Deps, name: str) -> SourceView:
    check_source_name(name)
    source = deps.sources.get(name)
    if source is None:
        raise NotFound(f"no source {name!r}")
    return SourceView(**source.model_dump(), record_count=deps.records.count(name),
                      held_snapshot=snapshots.waiting(deps, name))


def list_sources(deps: Deps) -> list[Source]:
    return deps.sources.list()


@capture_method
def read_record(deps: Deps, source: str, record_id: str, actor: Actor) -> RecordView:
    """One person's record, opened; audited (by the record's blind token, never its ID) before it is handed out."""
    check_source_name(source)
    if deps.sources.get(source) is None:
        raise NotFound(f"no source {source!r}")
    token = vault.record_token(deps.keyring, source, record_id)
    sealed = deps.records.get(source, token)
    if sealed is None:
        raise NotFound(f"no record with that ID in source {source!r}")
    record = vault.open_record(deps.keyring, sealed)
    trail.record(deps, "record.read", actor, {"source": source, "record": token})
    return RecordView(source=source, record_id=record.record_id, attributes=record.attributes,
                      warnings=record.warnings, ingestion_id=record.ingestion_id, ingested_at=record.ingested_at)


_RETRY_PENDING = "a temporary error stopped this file; it will be retried"


def show_ingestion(ingestion: Ingestion, role: Role) -> IngestionView:
    """The ingestion as `role` may see it: the file name only for FILE_NAME_READERS; why a retry is pending, or the
    last error of a file the queue gave up on, only for ERROR_DETAIL_READERS (others learn that there is one)."""
    view = IngestionView.of(ingestion)
    hidden: dict = {}
    if role not in FILE_NAME_READERS:
        hidden["file"] = None
    if role not in ERROR_DETAIL_READERS:
        if view.last_error is not None:
            hidden["last_error"] = _RETRY_PENDING
        if view.reason and LAST_ERROR_MARK in view.reason:
            hidden["reason"] = view.reason.split(LAST_ERROR_MARK)[0] + " (an admin sees the last error)"
    return view.model_copy(update=hidden)


def list_ingestions(deps: Deps, source: str | None, limit: int, cursor: str | None, role: Role) -> IngestionPage:
    """A page of ingestions, newest first, as `role` may see them; `next_cursor` continues it."""
    after = cursors.decode(cursor, cursors.INGESTION) if cursor else None
    page, last = deps.ingestions.page(source, limit, after)
    return IngestionPage(items=[show_ingestion(i, role) for i in page],
                         next_cursor=cursors.encode(last) if last else None)


def get_ingestion(deps: Deps, ingestion_id: str, role: Role) -> IngestionView:
    return show_ingestion(deps.ingestions.get(ingestion_id), role)


@capture_method
def ingestion_rejections(deps: Deps, ingestion_id: str, actor: Actor) -> list[dict]:
    """Rejected rows hold personal data: reading them is audited, with their count."""
    ingestion = deps.ingestions.get(ingestion_id)
    rows = ingestion_logic.read_rejection_report(deps.s3, deps.keyring, deps.vault_bucket, ingestion)
    trail.record(deps, "ingestion.rejections_read", actor, {"ingestion_id": ingestion.id}, {"rows": len(rows)})
    return rows
