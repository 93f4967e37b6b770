"""Who may do what: one role x route matrix for the whole API, checked once for every request before any route runs
(before body validation too, so a caller who may not use a route learns nothing about it). In AWS the HTTP API's JWT
authorizer has already checked the token; the role is its `pv_role` claim, the tenant its `pv_tenant` claim.

Adding a route is one line in ROUTES, spelled like the route's decorator ("POST /v1/things/<thing_id>"). A route that
is missing here answers 404 to everyone (fail closed), and tests/integration/test_access_matrix.py fails until it
has its line. README.md shows this matrix as a table.
"""
import re
from dataclasses import dataclass
from enum import StrEnum

from profilevault.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    PRIVACY_OFFICER = "privacy_officer"
    ANALYST = "analyst"
    AUDITOR = "auditor"


ADMIN, OFFICER, ANALYST, AUDITOR = Role.ADMIN, Role.PRIVACY_OFFICER, Role.ANALYST, Role.AUDITOR
PUBLIC: frozenset[Role] = frozenset()  # no token needed (the API's description, the health check)
EVERYONE = frozenset(Role)
ADMINS = frozenset({ADMIN})
STAFF_READERS = frozenset({ADMIN, OFFICER, ANALYST})  # profiles: analysts see them masked (PROFILE_MASKED_VIEW)
STEWARDS = frozenset({ADMIN, OFFICER})  # rule sets and suggestions name record IDs
KEY_READERS = frozenset({ADMIN, OFFICER, AUDITOR})
OFFICERS = frozenset({OFFICER})  # act on privacy requests
REQUEST_READERS = frozenset({OFFICER, ADMIN})
AUDIT_READERS = frozenset({ADMIN, AUDITOR})

PROFILE_FULL_VIEW = frozenset({ADMIN, OFFICER})
PROFILE_MASKED_VIEW = frozenset({ANALYST})
# Ingestions: the file name is the uploader's choice and can name a person; why a retry is pending can name the
# tenant's KMS key and its state. Others see the ingestion without either.
FILE_NAME_READERS = frozenset({ADMIN, OFFICER})
ERROR_DETAIL_READERS = ADMINS

ROUTES: dict[str, frozenset[Role]] = {
    "GET /v1/health": PUBLIC,
    "GET /v1/docs": PUBLIC,
    # sources, records, ingestions
    "GET /v1/sources": EVERYONE,
    "GET /v1/sources/<name>": EVERYONE,
    "PUT /v1/sources/<name>": ADMINS,
    "DELETE /v1/sources/<name>": ADMINS,
    "GET /v1/sources/<name>/records/<record_id>": ADMINS,
    "GET /v1/ingestions": EVERYONE,
    "GET /v1/ingestions/<ingestion_id>": EVERYONE,
    "GET /v1/ingestions/<ingestion_id>/rejections": ADMINS,
    "POST /v1/ingestions/<ingestion_id>/apply": ADMINS,
    # the tenant key
    "GET /v1/tenant/key": KEY_READERS,
    "PUT /v1/tenant/key": ADMINS,
    # unification
    "GET /v1/unification/rules": STEWARDS,
    "PUT /v1/unification/rules": ADMINS,
    "POST /v1/unification/runs": ADMINS,
    "GET /v1/unification/runs": EVERYONE,
    "GET /v1/unification/runs/<run_id>": EVERYONE,
    "GET /v1/unification/suggestions": STEWARDS,
    "POST /v1/refreshes": ADMINS,
    "GET /v1/refreshes/<refresh_id>": EVERYONE,
    # profiles
    "GET /v1/profiles": STAFF_READERS,
    "POST /v1/profiles/search": STAFF_READERS,
    "GET /v1/profiles/<profile_id>": STAFF_READERS,
    "GET /v1/profiles/<profile_id>/explain": STAFF_READERS,
    # privacy requests
    "POST /v1/privacy-requests": OFFICERS,
    "GET /v1/privacy-requests": REQUEST_READERS,
    "GET /v1/privacy-requests/<request_id>": REQUEST_READERS,
    "GET /v1/privacy-requests/<request_id>/export": OFFICERS,
    "POST /v1/privacy-requests/<request_id>/confirm": OFFICERS,
    "POST /v1/privacy-requests/<request_id>/cancel": OFFICERS,
    "POST /v1/privacy-requests/<request_id>/extend": OFFICERS,
    "POST /v1/privacy-requests/<request_id>/retry": OFFICERS,
    # the audit trail
    "GET /v1/audit": AUDIT_READERS,
    "GET /v1/audit/verify": AUDIT_READERS,
    # what erasures keep out of ingestion
    "GET /v1/suppressions": ADMINS,
    "DELETE /v1/suppressions/<suppression_id>": ADMINS,
}


@dataclass(frozen=True)
class Caller:
    sub: str  # the staff identity (the token's subject); the audit trail keeps a pseudonym of it
    role: Role


def _pattern(route: str) -> re.Pattern:
    """"GET /v1/things/<thing_id>" -> a regex of "<METHOD> <path>" where a path variable is one segment."""
    return re.compile("".join("[^/]+" if re.fullmatch(r"<\w+>", part) else re.escape(part)
                              for part in re.split(r"(<\w+>)", route)) + "$")


# Literal routes first, then by fewer path variables: /v1/x/export wins over /v1/x/<id>, as in the resolver.
_COMPILED = sorted(((route, _pattern(route)) for route in ROUTES), key=lambda r: (r[0].count("<"), r[0]))


def route_of(method: str, path: str) -> str | None:
    """The matrix's key for a request, or None when no route has that shape."""
    wanted = f"{method.upper()} {path}"
    return next((route for route, pattern in _COMPILED if pattern.match(wanted)), None)


def caller_from_claims(claims: dict, tenant: str) -> Caller:
    """The token must be for this deployment's tenant (claim pv_tenant) and carry a role (claim pv_role)."""
    if claims.get("pv_tenant") != tenant:
        raise Forbidden("the token is not for this tenant (claim pv_tenant)")
    try:
        role = Role(claims.get("pv_role", ""))
    except ValueError:
        raise Forbidden("the token carries no ProfileVault role (claim pv_role)") from None
    return Caller(sub=str(claims.get("sub", "")), role=role)


def authorize(route: str, claims: dict | None, tenant: str) -> Caller | None:
    """The caller of a route, or Forbidden. None for public routes."""
    allowed = ROUTES[route]
    if allowed is PUBLIC:
        return None
    caller = caller_from_claims(claims or {}, tenant)
    if caller.role not in allowed:
        raise Forbidden(f"role {caller.role.value!r} may not use {route}; allowed: "
                        f"{sorted(r.value for r in allowed)}")
    return caller
