"""What the logic needs, wired once per container from settings and boto3 clients (tests wire their own): the
repositories, each bound to its client, table names and tenant, the tenant keyring, and the queue."""
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from profilevault.aws import AwsClients, make_clients
from profilevault.config import Settings, get_settings
from profilevault.keys.keyring import TenantKeyring
from profilevault.storage.audit import AnchorStore, AuditRepository
from profilevault.storage.changes import ChangeJournal
from profilevault.storage.dynamo import Tables
from profilevault.storage.ingestions import IngestionRepository
from profilevault.storage.keyring import KeyringRepository
from profilevault.storage.profiles import ProfileRepository
from profilevault.storage.records import RecordRepository
from profilevault.storage.rulesets import RuleSetRepository
from profilevault.storage.runs import RunRepository
from profilevault.storage.sources import SourceRepository
from profilevault.storage.state import StateRepository


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Deps:
    tenant: str
    keyring: TenantKeyring
    sources: SourceRepository
    ingestions: IngestionRepository
    records: RecordRepository
    changes: ChangeJournal
    profiles: ProfileRepository
    rulesets: RuleSetRepository
    states: StateRepository
    runs: RunRepository
    audit: AuditRepository  # the audit chain, its head and the actor pseudonyms
    anchors: AnchorStore  # write-once copies of the chain head
    s3: Any  # landing drops and rejection reports (storage.objects)
    sqs: Any
    vault_bucket: str
    jobs_queue_url: str
    ingestion_batch_window_seconds: int = 5
    min_snapshot_share: float = 0.5
    now: Callable[[], str] = field(default=utc_now)


def build_deps(settings: Settings | None = None, clients: AwsClients | None = None) -> Deps:
    settings = settings or get_settings()
    clients = clients or make_clients()
    ddb, tenant = clients.dynamodb, settings.tenant_id
    tables = Tables(control=settings.control_table, records=settings.records_table, keys=settings.keys_table,
                    index=settings.index_table, profiles=settings.profiles_table)
    changes = ChangeJournal(ddb, tables, tenant)
    return Deps(
        tenant=tenant,
        keyring=TenantKeyring(tenant_id=tenant, kms=clients.kms,
                              store=KeyringRepository(ddb, settings.control_table, tenant),
                              default_kms_key_arn=settings.default_kms_key_arn,
                              cache_seconds=settings.data_key_cache_seconds),
        sources=SourceRepository(ddb, tables, tenant),
        ingestions=IngestionRepository(ddb, tables, tenant),
        records=RecordRepository(ddb, tables, tenant, changes),
        changes=changes,
        profiles=ProfileRepository(ddb, tables, tenant),
        rulesets=RuleSetRepository(ddb, tables, tenant),
        states=StateRepository(ddb, clients.s3, tables, settings.vault_bucket, tenant),
        runs=RunRepository(ddb, tables, tenant),
        audit=AuditRepository(ddb, settings.audit_table, tenant),
        anchors=AnchorStore(clients.s3, settings.audit_anchor_bucket),
        s3=clients.s3, sqs=clients.sqs, vault_bucket=settings.vault_bucket, jobs_queue_url=settings.jobs_queue_url,
        ingestion_batch_window_seconds=settings.ingestion_batch_window_seconds,
        min_snapshot_share=settings.min_snapshot_share)
