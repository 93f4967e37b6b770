"""HTTP API: sources, records, ingestions, tenant key, unification rules and runs, profiles, privacy requests, the
audit trail. Who may call which route is checked once, before routing, against the matrix in profilevault.api.access;
routes parse, call one logic function and shape the response; every error becomes a problem body in
profilevault.api.problems."""
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from pydantic import BaseModel, ConfigDict, Field

from profilevault import observability, refresh
from profilevault.api import access, cursors, problems
from profilevault.audit import listing, verification
from profilevault.audit.listing import AuditPage
from profilevault.audit.trail import Actor
from profilevault.audit.verification import Verification
from profilevault.aws import make_clients
from profilevault.config import get_settings
from profilevault.domain.ingestions import IngestionPage, IngestionView, SnapshotApproval
from profilevault.domain.runs import Run, RunPage
from profilevault.domain.shown import Shown
from profilevault.domain.sources import Source, SourceSpec
from profilevault.errors import Conflict, Forbidden, InvalidInput, KeyUnavailable, ProfileVaultError
from profilevault.ingestion import catalog
from profilevault.ingestion.catalog import RecordView, SourceView
from profilevault.keys import tenant_key
from profilevault.observability import logger, metrics, tracer
from profilevault.privacy import actions, suppression
from profilevault.privacy.actions import FiledRequest, RequestPage, RequestView
from profilevault.privacy.requests import PROFILE_ID, ExtensionReason, NewPrivacyRequest, RequestType, Status
from profilevault.privacy.suppression import SuppressionPage, SuppressionView
from profilevault.profiles import rulesets, runs, views
from profilevault.profiles.views import Explanation, ProfilePage, ProfileSearchResult, ProfileView, SuggestionPage
from profilevault.unification.rules import RuleSet
from profilevault.wiring import build_deps

app = APIGatewayHttpResolver(enable_validation=True)
settings = get_settings()
clients = make_clients()
deps = build_deps(settings, clients)
# A retried POST /v1/privacy-requests with the same Idempotency-Key (from the same caller) returns the first request.
# The record holds hashes and the 202 body only; the body's digest is keyed, so it reveals nothing of the subject.
idempotency = IdempotencyConfig(event_key_jmespath="[key, caller]", payload_validation_jmespath="body",
                                expires_after_seconds=24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=clients.dynamodb)
# The API described from these routes and their models: Swagger UI at /v1/docs, the OpenAPI document at
# /v1/docs?format=json. Public (no token), like /v1/health: it holds no data, only the shape of the API.
app.enable_swagger(path="/v1/docs", title="ProfileVault API", version="1",
                   description="Bring-your-own-key customer data platform: sources, ingestions, the tenant key, "
                               "unification rules and runs, profiles, privacy requests, the audit trail. Every "
                               "route but /v1/health "
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


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile_ids: list[Annotated[str, Field(pattern=PROFILE_ID)]] = Field(min_length=1, max_length=100)


class ExtensionRequest(BaseModel):
    """Art. 12(3): once, by one or two further months, for the complexity or the number of requests."""

    model_config = ConfigDict(extra="forbid")
    reason: ExtensionReason
    months: int = Field(default=2, ge=1, le=2)


def caller() -> access.Caller:
    """Who is calling (the role was checked against the matrix before routing)."""
    return access.caller_from_claims(app.current_event.request_context.authorizer.jwt_claim or {}, deps.tenant)


def current_actor() -> Actor:
    """The caller as the audit trail names it (the token's `sub` and role)."""
    who = caller()
    if not who.sub:
        raise Forbidden("the token names no subject (claim sub)")
    return Actor(sub=who.sub, role=who.role.value)


@app.get("/v1/health")
def health() -> Health:
    return Health(status="ok")


@app.put("/v1/sources/<name>", responses={
    200: {"description": "Updated", "content": {"application/json": {"model": SourceView}}},
    201: {"description": "Registered", "content": {"application/json": {"model": SourceView}}}})
def put_source(name: str, spec: Annotated[SourceSpec, Body()]) -> Response[SourceView]:
    source, created = catalog.register_source(deps, name, spec, current_actor())
    return Response(status_code=201 if created else 200, content_type="application/json", body=source)


@app.get("/v1/sources")
def get_sources() -> SourceList:
    return SourceList(items=catalog.list_sources(deps))


@app.get("/v1/sources/<name>")
def get_source(name: str) -> SourceView:
    return catalog.describe_source(deps, name)


@app.get("/v1/sources/<name>/records/<record_id>")
def get_record(name: str, record_id: str) -> RecordView:
    return catalog.read_record(deps, name, record_id, current_actor())


@app.delete("/v1/sources/<name>", responses=QUEUED)
def delete_source(name: str) -> Response[Run]:
    return accepted(refresh.remove_source(deps, name, current_actor()))


@app.get("/v1/ingestions")
def get_ingestions(source: Annotated[str | None, Query(max_length=63)] = None, limit: Limit = 100,
                   cursor: Cursor = None) -> IngestionPage:
    return catalog.list_ingestions(deps, source, limit, cursor, caller().role)


@app.get("/v1/ingestions/<ingestion_id>")
def get_ingestion(ingestion_id: str) -> IngestionView:
    return catalog.get_ingestion(deps, ingestion_id, caller().role)


@app.get("/v1/ingestions/<ingestion_id>/rejections")
def get_rejections(ingestion_id: str) -> RejectionList:
    return RejectionList.model_validate(
        {"items": catalog.ingestion_rejections(deps, ingestion_id, current_actor())})


@app.post("/v1/ingestions/<ingestion_id>/apply", responses={
    202: {"description": "Accepted: the held snapshot approved, and the refresh that applies it queued",
          "content": {"application/json": {"model": SnapshotApproval}}}})
def apply_snapshot(ingestion_id: str) -> Response[SnapshotApproval]:
    """Applies a held full snapshot: the refresh queued with it deletes the records the snapshot did not bring."""
    return Response(status_code=202, content_type="application/json",
                    body=refresh.approve_snapshot(deps, ingestion_id, current_actor()))


@app.get("/v1/tenant/key")
def get_tenant_key() -> TenantKey:
    return TenantKey.model_validate(deps.keyring.describe())


@app.put("/v1/tenant/key")
def put_tenant_key(change: Annotated[TenantKeyChange, Body()]) -> TenantKey:
    return TenantKey.model_validate(tenant_key.use_kms_key(deps, change.kms_key_arn, current_actor()))


@app.put("/v1/unification/rules")
def put_rules(ruleset: Annotated[RuleSet, Body()]) -> RuleSet:
    return rulesets.put_ruleset(deps, ruleset, current_actor())


@app.get("/v1/unification/rules")
def get_rules() -> RuleSet:
    return rulesets.get_ruleset(deps)


@app.post("/v1/unification/runs", responses=QUEUED)
def post_run() -> Response[Run]:
    return accepted(runs.queue_run(deps, trigger="api", actor=current_actor()))


@app.get("/v1/unification/runs")
def get_runs(limit: Limit = 100, cursor: Cursor = None) -> RunPage:
    """Runs, refreshes and source purges, newest first."""
    page, last = runs.list_runs(deps, limit, cursors.decode(cursor, cursors.RUN) if cursor else None)
    return RunPage(items=page, next_cursor=cursors.encode(last) if last else None)


@app.get("/v1/unification/runs/<run_id>")
def get_run(run_id: str) -> Run:
    return runs.get_run(deps, run_id)


@app.get("/v1/unification/suggestions")
def get_suggestions(limit: Limit = 100, cursor: Cursor = None) -> SuggestionPage:
    return views.list_suggestions(deps, limit, cursor)


@app.post("/v1/refreshes", responses=QUEUED)
def post_refresh() -> Response[Run]:
    return accepted(refresh.queue_refresh(deps, trigger="api", actor=current_actor()))


@app.get("/v1/refreshes/<refresh_id>")
def get_refresh(refresh_id: str) -> Run:
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
    return listing.list_entries(deps, start=start, end=end, action=action, request_id=request_id, limit=limit,
                                cursor=cursor)


@app.get("/v1/audit/verify")
def verify_audit() -> Verification:
    """The whole chain recomputed and compared with its head and its write-once anchors."""
    return verification.verify(deps)


@idempotent_function(data_keyword_argument="attempt", persistence_store=persistence, config=idempotency)
def file_request_once(attempt: dict, new: NewPrivacyRequest, actor: Actor) -> dict:
    return actions.file_request(deps, new, actor).model_dump()


@app.post("/v1/privacy-requests", responses={
    202: {"description": "Accepted: the request, received", "content": {"application/json": {"model": FiledRequest}}}})
def post_privacy_request(new: Annotated[NewPrivacyRequest, Body()]) -> Response[FiledRequest]:
    key = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}.get("idempotency-key")
    actor = current_actor()
    if key is None:
        return Response(status_code=202, content_type="application/json", body=actions.file_request(deps, new, actor))
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise InvalidInput("Idempotency-Key: 1 to 255 printable characters")
    attempt = {"key": key, "caller": actor.sub, "body": actions.request_body_digest(deps, new)}
    try:
        first = FiledRequest.model_validate(file_request_once(attempt=attempt, new=new, actor=actor))
    except IdempotencyValidationError:
        raise InvalidInput("this Idempotency-Key was used for a different request") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict("a request with this Idempotency-Key is being filed; retry in a moment") from None
    return Response(status_code=202, content_type="application/json", body=first)


@app.get("/v1/privacy-requests")
def get_privacy_requests(status: Annotated[Status | None, Query()] = None,
                         type: Annotated[RequestType | None, Query()] = None,  # noqa: A002 (the query's name)
                         overdue: Annotated[bool, Query()] = False,
                         limit: Limit = 100, cursor: Cursor = None) -> RequestPage:
    """Newest first: IDs, types, statuses and dates only."""
    return actions.list_requests(deps, status, type, overdue, limit, cursor)


@app.get("/v1/privacy-requests/<request_id>")
def get_privacy_request(request_id: str) -> RequestView:
    return actions.show_request(deps, request_id)


@app.post("/v1/privacy-requests/<request_id>/confirm")
def confirm_privacy_request(request_id: str, confirmation: Annotated[Confirmation, Body()]) -> RequestView:
    return actions.confirm(deps, request_id, confirmation.profile_ids, current_actor())


@app.post("/v1/privacy-requests/<request_id>/cancel")
def cancel_privacy_request(request_id: str) -> RequestView:
    return actions.cancel(deps, request_id, current_actor())


@app.post("/v1/privacy-requests/<request_id>/extend")
def extend_privacy_request(request_id: str, extension: Annotated[ExtensionRequest, Body()]) -> RequestView:
    return actions.extend(deps, request_id, extension.months, extension.reason, current_actor())


@app.post("/v1/privacy-requests/<request_id>/retry")
def retry_privacy_request(request_id: str) -> RequestView:
    return actions.retry(deps, request_id, current_actor())


@app.get("/v1/privacy-requests/<request_id>/export", responses={
    303: {"description": "See Other: a presigned link to the package, valid 15 minutes"}})
def get_privacy_request_export(request_id: str) -> Response[str]:
    link = actions.export_link(deps, request_id, current_actor())
    return Response(status_code=303, headers={"Location": link, "Cache-Control": "no-store"}, body="")


@app.get("/v1/suppressions")
def get_suppressions(limit: Limit = 100, cursor: Cursor = None) -> SuppressionPage:
    """What erasures keep out of ingestion: blind values and the request that put each."""
    return suppression.list_suppressions(deps, limit, cursor)


@app.delete("/v1/suppressions/<suppression_id>")
def lift_suppression(suppression_id: str) -> SuppressionView:
    """Lets that identifier or record in again (the organisation brings it back lawfully); audited."""
    return suppression.lift(deps, current_actor(), suppression_id)


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


def check_access(event: dict) -> dict | None:
    """The access matrix, once for every request, before routing and body validation: a refusal as a problem, or
    None to go on. A request to no route of the matrix is a 404 (a route missing from the matrix is unreachable)."""
    http = (event.get("requestContext") or {}).get("http") or {}
    route = access.route_of(http.get("method", ""), event.get("rawPath") or http.get("path", ""))
    if route is None:
        return problems.gateway_response(404, "Not found", "no such route")
    claims = ((event["requestContext"].get("authorizer") or {}).get("jwt") or {}).get("claims")
    try:
        access.authorize(route, claims, deps.tenant)
    except ProfileVaultError as refused:
        logger.info("request refused", extra={"status": refused.status, "route": route})
        return problems.gateway_response(refused.status, refused.title, refused.detail, refused.type)
    return None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event, context):
    idempotency.register_lambda_context(context)
    # Checked before routing: request validation would otherwise parse a non-JSON body as a form and echo it, and
    # parse a deeply nested one until the interpreter's recursion limit (a 500).
    return (problems.refuse_non_json_body(event) or problems.refuse_deeply_nested_body(event)
            or check_access(event) or app.resolve(event, context))
