"""Who may do what. In AWS the HTTP API's JWT authorizer has already checked the token; the role is a claim."""
from enum import StrEnum

from profilevault.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    PRIVACY_OFFICER = "privacy_officer"
    ANALYST = "analyst"
    AUDITOR = "auditor"


# Who may do what, in one place (the routes and the profile views use these).
EVERYONE = frozenset(Role)
ADMINS = frozenset({Role.ADMIN})
KEY_READERS = frozenset({Role.ADMIN, Role.PRIVACY_OFFICER, Role.AUDITOR})
RULE_READERS = frozenset({Role.ADMIN, Role.PRIVACY_OFFICER})  # rule exceptions name record IDs
AUDIT_READERS = frozenset({Role.ADMIN, Role.AUDITOR})
PROFILE_FULL_VIEW = frozenset({Role.ADMIN, Role.PRIVACY_OFFICER})
PROFILE_MASKED_VIEW = frozenset({Role.ANALYST})


def role_from_claims(claims: dict, tenant: str) -> Role:
    """The token must be for this deployment's tenant (claim pv_tenant) and carry a role (claim pv_role)."""
    if claims.get("pv_tenant") != tenant:
        raise Forbidden("the token is not for this tenant (claim pv_tenant)")
    try:
        return Role(claims.get("pv_role", ""))
    except ValueError:
        raise Forbidden("the token carries no ProfileVault role (claim pv_role)") from None


def require(role: Role, allowed: frozenset[Role] | set[Role]) -> None:
    if role not in allowed:
        raise Forbidden(f"role {role.value!r} may not do this; allowed: {sorted(r.value for r in allowed)}")
