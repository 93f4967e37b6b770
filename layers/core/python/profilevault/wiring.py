"""What the logic needs, wired once per container from settings and boto3 clients (tests wire their own)."""
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from profilevault.aws import AwsClients, make_clients
from profilevault.config import Settings, get_settings
from profilevault.keys.keyring import TenantKeyring
from profilevault.storage import store
from profilevault.storage.audit import AnchorStore, AuditRepository
from profilevault.storage.profile_store import ProfileTables


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Deps:
    s3: object
    dynamodb: object
    sqs: object
    tables: store.Tables
    tenant: str
    keyring: TenantKeyring
    vault_bucket: str
    profiles_table: str
    jobs_queue_url: str
    requests_queue_url: str
    exports_bucket: str
    audit: AuditRepository
    anchors: AnchorStore
    ingestion_batch_window_seconds: int = 5
    now: Callable[[], str] = field(default=utc_now)


def build_deps(settings: Settings | None = None, clients: AwsClients | None = None) -> Deps:
    settings = settings or get_settings()
    clients = clients or make_clients()
    return Deps(
        s3=clients.s3, dynamodb=clients.dynamodb, sqs=clients.sqs,
        tables=store.Tables(control=settings.control_table, records=settings.records_table,
                            keys=settings.keys_table, index=settings.index_table),
        tenant=settings.tenant_id,
        keyring=TenantKeyring(tenant_id=settings.tenant_id, kms=clients.kms, dynamodb=clients.dynamodb,
                              control_table=settings.control_table,
                              default_kms_key_arn=settings.default_kms_key_arn,
                              cache_seconds=settings.data_key_cache_seconds),
        vault_bucket=settings.vault_bucket, profiles_table=settings.profiles_table,
        jobs_queue_url=settings.jobs_queue_url, requests_queue_url=settings.requests_queue_url,
        exports_bucket=settings.exports_bucket,
        audit=AuditRepository(clients.dynamodb, settings.audit_table, settings.tenant_id),
        anchors=AnchorStore(clients.s3, settings.audit_anchor_bucket),
        ingestion_batch_window_seconds=settings.ingestion_batch_window_seconds)


def profile_tables(deps: Deps) -> ProfileTables:
    return ProfileTables(profiles=deps.profiles_table, keys=deps.tables.keys, control=deps.tables.control)
