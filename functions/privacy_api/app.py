"""HTTP API: sources, records, ingestions, tenant key, unification rules and runs, profiles, the audit trail.
Routes parse, check the caller's role, call one logic function and shape the response; every error becomes a
problem body in profilevault.api.problems."""
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ConfigDict, Field

from profilevault import observability, refresh
from profilevault.api import cursors, problems
from profilevault.api.access import (
    ADMINS,
    AUDIT_READERS,
    EVERYONE,
    KEY_READERS,
    RULE_READERS,
    Role,
    require,
    role_from_claims,
)
from profilevault.audit import listing, verification
from profilevault.audit.listing import AuditPage
from profilevault.audit.trail import Actor
from profilevault.audit.verification import Verification
from profilevault.domain.ingestions import IngestionPage, IngestionView, SnapshotApproval
from profilevault.domain.runs import Run, RunPage
from profilevault.domain.shown import Shown
from profilevault.domain.sources import Source, SourceSpec
from profilevault.errors import Forbidden, InvalidInput, KeyUnavailable, ProfileVaultError
from profilevault.ingestion import catalog
from profilevault.ingestion.catalog import RecordView, SourceView
from profilevault.keys import tenant_key
from profilevault.observability import logger, metrics, tracer
from profilevault.profiles import rulesets, runs, views
from profilevault.profiles.views import Explanation, ProfilePage, ProfileSearchResult, ProfileView, SuggestionPage
from profilevault.unification.rules import RuleSet
from profilevault.wiring import build_deps

app = APIGatewayHttpResolver(enable_validation=True)
deps = build_deps()
# The API described from these routes and their models: Swagger UI at /v1/docs, the OpenAPI document at
# /v1/docs?format=json. Public (no token), like /v1/health: it holds no data, only the shape of the API.
app.enable_swagger(path="/v1/docs", title="ProfileVault API", version="1",
                   description="Bring-your-own-key customer data platform: sources, ingestions, the tenant key, "
                               "unification rules and runs, profiles, the audit trail. Every route but /v1/health "
                               "and /v1/docs needs a bearer JWT carrying pv_tenant and pv_role.",
                   security_schemes={"jwt": HTTPBearer(bearerFormat="JWT")}, security=[{"jwt": []}])


class TenantKeyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kms_key_arn: str = Field(max_length=2048)  # the keyring validates it


class ProfileSearch(BaseModel):
    """Personal data travels in the body, never in a URL, where access logs would keep it."""

    model_config = ConfigDict(extra="forbid")
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    customer_id: str | None = Field(default=None, max_length=256)

    def query(self) -> dict[str, str]:
        given = self.model_dump(exclude_none=True)
        if len(given) != 1:
            raise InvalidInput("search by exactly one of email, phone, customer_id")
        return given


class Health(BaseModel):
    status: str


class SourceList(BaseModel):
    items: list[Source]


class Rejection(Shown):
    """A row that could not become a record: where it was, why, and what it held (admins only)."""

    row_number: int
    last_row_number: int | None = None  # when the rejection took several rows (a stray quote swallows rows)
    reason: str
    raw: str


class RejectionList(BaseModel):
    items: list[Rejection]


class TenantKey(BaseModel):
    """The tenant's keyring as stored: the KMS key that wraps its keys, never key material."""

    kms_key_arn: str
    version: int
    created_at: str
    updated_at: str


Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]


def accepted(run: Run) -> Response[Run]:
    return Response(status_code=202, content_type="application/json", body=run)


QUEUED: dict[int, OpenAPIResponse] = {202: {"description": "Accepted: the run that will do it, queued",
                                           "content": {"application/json": {"model": Run}}}}


def caller(*allowed: Role) -> Role:
    role = role_from_claims(app.current_event.request_context.authorizer.jwt_claim or {}, deps.tenant)
    require(role, set(allowed) if allowed else EVERYONE)
    return role


def current_actor(*allowed: Role) -> Actor:
    """The caller as the audit trail names it (the token's `sub` and role), after the same role check as caller()."""
    role = caller(*allowed)
    sub = (app.current_event.request_context.authorizer.jwt_claim or {}).get("sub")
    if not sub:
        raise Forbidden("the token names no subject (claim sub)")
    return Actor(sub=str(sub), role=role.value)


@app.get("/v1/health")
def health() -> Health:
    return Health(status="ok")


@app.put("/v1/sources/<name>", responses={
    200: {"description": "Updated", "content": {"application/json": {"model": SourceView}}},
    201: {"description": "Registered", "content": {"application/json": {"model": SourceView}}}})
def put_source(name: str, spec: Annotated[SourceSpec, Body()]) -> Response[SourceView]:
    source, created = catalog.register_source(deps, name, spec, current_actor(*ADMINS))
    return Response(status_code=201 if created else 200, content_type="application/json", body=source)


@app.get("/v1/sources")
def get_sources() -> SourceList:
    caller()
    return SourceList(items=catalog.list_sources(deps))


@app.get("/v1/sources/<name>")
def get_source(name: str) -> SourceView:
    caller()
    return catalog.describe_source(deps, name)


@app.get("/v1/sources/<name>/records/<record_id>")
def get_record(name: str, record_id: str) -> RecordView:
    return catalog.read_record(deps, name, record_id, current_actor(*ADMINS))


@app.delete("/v1/sources/<name>", responses=QUEUED)
def delete_source(name: str) -> Response[Run]:
    return accepted(refresh.remove_source(deps, name, current_actor(*ADMINS)))


@app.get("/v1/ingestions")
def get_ingestions(source: Annotated[str | None, Query(max_length=63)] = None, limit: Limit = 100,
                   cursor: Cursor = None) -> IngestionPage:
    caller()
    return catalog.list_ingestions(deps, source, limit, cursor)


@app.get("/v1/ingestions/<ingestion_id>")
def get_ingestion(ingestion_id: str) -> IngestionView:
    caller()
    return catalog.get_ingestion(deps, ingestion_id)


@app.get("/v1/ingestions/<ingestion_id>/rejections")
def get_rejections(ingestion_id: str) -> RejectionList:
    return RejectionList.model_validate(
        {"items": catalog.ingestion_rejections(deps, ingestion_id, current_actor(*ADMINS))})


@app.post("/v1/ingestions/<ingestion_id>/apply", responses={
    202: {"description": "Accepted: the held snapshot approved, and the refresh that applies it queued",
          "content": {"application/json": {"model": SnapshotApproval}}}})
def apply_snapshot(ingestion_id: str) -> Response[SnapshotApproval]:
    """Applies a held full snapshot: the refresh queued with it deletes the records the snapshot did not bring."""
    actor = current_actor(*ADMINS)
    return Response(status_code=202, content_type="application/json",
                    body=refresh.approve_snapshot(deps, ingestion_id, actor))


@app.get("/v1/tenant/key")
def get_tenant_key() -> TenantKey:
    caller(*KEY_READERS)
    return TenantKey.model_validate(deps.keyring.describe())


@app.put("/v1/tenant/key")
def put_tenant_key(change: Annotated[TenantKeyChange, Body()]) -> TenantKey:
    return TenantKey.model_validate(tenant_key.use_kms_key(deps, change.kms_key_arn, current_actor(*ADMINS)))


@app.put("/v1/unification/rules")
def put_rules(ruleset: Annotated[RuleSet, Body()]) -> RuleSet:
    return rulesets.put_ruleset(deps, ruleset, current_actor(*ADMINS))


@app.get("/v1/unification/rules")
def get_rules() -> RuleSet:
    caller(*RULE_READERS)
    return rulesets.get_ruleset(deps)


@app.post("/v1/unification/runs", responses=QUEUED)
def post_run() -> Response[Run]:
    return accepted(runs.queue_run(deps, trigger="api", actor=current_actor(*ADMINS)))


@app.get("/v1/unification/runs")
def get_runs(limit: Limit = 100, cursor: Cursor = None) -> RunPage:
    """Runs, refreshes and source purges, newest first."""
    caller()
    page, last = runs.list_runs(deps, limit, cursors.decode(cursor, cursors.RUN) if cursor else None)
    return RunPage(items=page, next_cursor=cursors.encode(last) if last else None)


@app.get("/v1/unification/runs/<run_id>")
def get_run(run_id: str) -> Run:
    caller()
    return runs.get_run(deps, run_id)


@app.get("/v1/unification/suggestions")
def get_suggestions(limit: Limit = 100, cursor: Cursor = None) -> SuggestionPage:
    caller(*RULE_READERS)
    return views.list_suggestions(deps, limit, cursor)


@app.post("/v1/refreshes", responses=QUEUED)
def post_refresh() -> Response[Run]:
    return accepted(refresh.queue_refresh(deps, trigger="api", actor=current_actor(*ADMINS)))


@app.get("/v1/refreshes/<refresh_id>")
def get_refresh(refresh_id: str) -> Run:
    caller()
    return runs.get_run(deps, refresh_id)


@app.get("/v1/profiles")
def get_profiles(limit: Limit = 100, cursor: Cursor = None) -> ProfilePage:
    return views.list_profiles(deps, current_actor(), limit, cursor)


@app.post("/v1/profiles/search")
def search_profiles(search: Annotated[ProfileSearch, Body()]) -> ProfileSearchResult:
    return views.search_profiles(deps, current_actor(), search.query())


@app.get("/v1/profiles/<profile_id>")
def get_profile(profile_id: str) -> ProfileView:
    return views.get_profile(deps, current_actor(), profile_id)


@app.get("/v1/profiles/<profile_id>/explain")
def explain_profile(profile_id: str) -> Explanation:
    return views.explain_profile(deps, current_actor(), profile_id)


@app.get("/v1/audit")
def get_audit(start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
              end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
              action: Annotated[str | None, Query(max_length=80)] = None,
              request_id: Annotated[str | None, Query(max_length=64)] = None,
              limit: Limit = 100, cursor: Cursor = None) -> AuditPage:
    """The audit trail, newest first: `from` inclusive, `to` exclusive (ISO 8601; no zone means UTC)."""
    caller(*AUDIT_READERS)
    return listing.list_entries(deps, start=start, end=end, action=action, request_id=request_id, limit=limit,
                                cursor=cursor)


@app.get("/v1/audit/verify")
def verify_audit() -> Verification:
    """The whole chain recomputed and compared with its head and its write-once anchors."""
    caller(*AUDIT_READERS)
    return verification.verify(deps)


@app.exception_handler(ProfileVaultError)
def domain_error(error: ProfileVaultError) -> Response:
    logger.info("request refused", extra={"status": error.status, "problem": error.type})
    if isinstance(error, KeyUnavailable):
        observability.key_unavailable("api")
    return problems.from_error(error)


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response:
    return problems.from_validation_errors(error.errors())


@app.not_found
def no_route(_error) -> Response:
    return problems.problem(404, "Not found", "no such route")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event, context):
    # Checked before routing: request validation would otherwise parse a non-JSON body as a form and echo it, and
    # parse a deeply nested one until the interpreter's recursion limit (a 500).
    return (problems.refuse_non_json_body(event) or problems.refuse_deeply_nested_body(event)
            or app.resolve(event, context))
