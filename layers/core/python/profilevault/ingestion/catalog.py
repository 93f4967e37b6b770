"""Sources, their records and their ingestions, as the API shows them."""
import json

from profilevault.api import cursors
from profilevault.domain.sources import SourceSpec, check_source_name
from profilevault.errors import NotFound
from profilevault.ingestion import flow as ingestion_logic
from profilevault.keys import vault
from profilevault.observability import capture_method
from profilevault.storage import store
from profilevault.wiring import Deps

# Ingestion fields the API shows; the wrapped report key stays inside.
_INGESTION_FIELDS = ("id", "source", "file", "kind", "operation", "status", "reason", "last_error", "rows_read",
                     "rows_stored", "rows_new", "rows_deleted", "rows_rejected", "warnings", "attempts",
                     "started_at", "finished_at")


def register_source(deps: Deps, name: str, spec: SourceSpec) -> tuple[dict, bool]:
    check_source_name(name)
    created = store.put_source(deps.dynamodb, deps.tables, deps.tenant, name, spec.model_dump(), deps.now())
    return describe_source(deps, name), created


def describe_source(deps: Deps, name: str) -> dict:
    check_source_name(name)
    source = store.get_source(deps.dynamodb, deps.tables, deps.tenant, name)
    if source is None:
        raise NotFound(f"no source {name!r}")
    return {**source, "record_count": store.count_records(deps.dynamodb, deps.tables, deps.tenant, name)}


def list_sources(deps: Deps) -> list[dict]:
    return store.list_sources(deps.dynamodb, deps.tables, deps.tenant)


@capture_method
def read_record(deps: Deps, source: str, record_id: str) -> dict:
    check_source_name(source)
    if store.get_source(deps.dynamodb, deps.tables, deps.tenant, source) is None:
        raise NotFound(f"no source {source!r}")
    token = vault.record_token(deps.keyring, source, record_id)
    items = store.get_record_items(deps.dynamodb, deps.tables, deps.tenant, source, token)
    if items is None:
        raise NotFound(f"no record with that ID in source {source!r}")
    return {"source": source, **vault.open_record(deps.keyring, *items)}


def show_ingestion(ingestion: dict) -> dict:
    shown = {k: ingestion[k] for k in _INGESTION_FIELDS if ingestion.get(k) is not None}
    shown["warning_reasons"] = json.loads(ingestion.get("warning_reasons") or "{}")
    shown["has_rejection_report"] = bool(ingestion.get("rejection_report"))
    return shown


def list_ingestions(deps: Deps, source: str | None, limit: int, cursor: str | None) -> dict:
    """A page of ingestions, newest first; `next_cursor` continues it."""
    after = cursors.decode(cursor, cursors.INGESTION) if cursor else None
    page, last = store.page_ingestions(deps.dynamodb, deps.tables, deps.tenant, source, limit, after)
    return {"items": [show_ingestion(i) for i in page], "next_cursor": cursors.encode(last) if last else None}


def get_ingestion(deps: Deps, ingestion_id: str) -> dict:
    return show_ingestion(store.get_ingestion(deps.dynamodb, deps.tables, deps.tenant, ingestion_id))


@capture_method
def ingestion_rejections(deps: Deps, ingestion_id: str) -> list[dict]:
    ingestion = store.get_ingestion(deps.dynamodb, deps.tables, deps.tenant, ingestion_id)
    return ingestion_logic.read_rejection_report(deps.s3, deps.keyring, deps.vault_bucket, ingestion)
