"""Configuration: one pydantic settings model, read once per container from the environment."""
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PV_", extra="ignore")

    tenant_id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    control_table: str
    records_table: str
    keys_table: str
    index_table: str
    profiles_table: str
    idempotency_table: str
    landing_bucket: str
    vault_bucket: str
    jobs_queue_url: str
    audit_table: str
    audit_anchor_bucket: str
    # Erasure: the state machine that coordinates it and the bus that tells source owners what to delete.
    erasure_state_machine_arn: str
    erasure_event_bus: str
    landing_retention_days: int = Field(ge=1)
    requests_queue_url: str
    exports_bucket: str
    default_kms_key_arn: str
    data_key_cache_seconds: int = Field(default=300, ge=0, le=3600)
    # How long a unification run queued by an ingestion waits for more files of the same burst.
    ingestion_batch_window_seconds: int = Field(default=5, ge=0, le=900)
    # How often the jobs queue delivers a job before its DLQ takes it (the queue's maxReceiveCount; the template
    # sets both from one mapping). Only the refresh function reads it.
    jobs_max_receives: int = Field(ge=1, le=1000)
    # The same for the requests queue and the privacy worker.
    requests_max_receives: int = Field(ge=1, le=1000)
    # A full snapshot with fewer rows than this share of the last applied one is held, not applied (template
    # parameter MinSnapshotShare).
    min_snapshot_share: float = Field(default=0.5, ge=0, le=1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Missing configuration fails loudly here (no silent defaults for names of resources)."""
    return Settings()
