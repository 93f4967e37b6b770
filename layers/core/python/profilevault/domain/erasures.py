"""An erasure in progress: what it located and did so far (privacy.erasure), sealed by its repository
(`storage.erasures`), because record IDs identify the person at the origin."""
from pydantic import BaseModel, Field


class SubjectRecord(BaseModel):
    source: str
    token: str
    record_id: str


class ErasureWork(BaseModel):
    """What an erasure found and did so far; sealed, because record IDs identify the person at the origin."""

    request_id: str
    attempt: int = 1
    verify_loops: int = 0
    records: list[SubjectRecord] = Field(default_factory=list)
    profile_ids: list[str] = Field(default_factory=list)
    blind_refs: list[str] = Field(default_factory=list)
    # Key items of the profile versions that held the person (profile ID -> key sort keys), checked gone by verify.
    profile_keys: dict[str, list[str]] = Field(default_factory=dict)
    recompute_run_id: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    landing_files: list[dict] = Field(default_factory=list)

    def add_located(self, records: list[SubjectRecord], profile_ids: list[str], blind_refs: list[str]) -> None:
        """Grows the set (a later locate may find what a racing writer added; nothing found before is forgotten)."""
        known = {(r.source, r.token) for r in self.records}
        self.records += [r for r in records if (r.source, r.token) not in known]
        self.profile_ids = sorted(set(self.profile_ids) | set(profile_ids))
        self.blind_refs = sorted(set(self.blind_refs) | set(blind_refs))
