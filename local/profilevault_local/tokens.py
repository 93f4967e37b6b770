"""A local OIDC-ish token issuer: one RSA key pair per run, a JWKS, and one bearer token per role."""
import json
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ROLES = ("admin", "privacy_officer", "analyst", "auditor")
# A working day: long enough for a shell session, short enough that a copied token soon stops working. The running
# stack writes fresh ones into its state file every TOKEN_REFRESH_SECONDS (`profilevault local token` reads them).
TOKEN_TTL_SECONDS = 8 * 3600
TOKEN_REFRESH_SECONDS = 3600


@dataclass(frozen=True)
class LocalIssuer:
    url: str  # the `iss` claim, also the base of the JWKS URL
    audience: str
    private_key: rsa.RSAPrivateKey
    kid: str


def new_issuer(url: str, audience: str) -> LocalIssuer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return LocalIssuer(url=url, audience=audience, private_key=key, kid=uuid.uuid4().hex[:16])


def jwks(issuer: LocalIssuer) -> dict:
    public = json.loads(RSAAlgorithm.to_jwk(issuer.private_key.public_key()))
    return {"keys": [{**public, "kid": issuer.kid, "use": "sig", "alg": "RS256"}]}


def mint_token(issuer: LocalIssuer, role: str, *, tenant: str = "default", ttl_seconds: int = TOKEN_TTL_SECONDS,
               now: int | None = None, extra_claims: dict | None = None) -> str:
    now = int(time.time()) if now is None else now
    claims = {"iss": issuer.url, "aud": issuer.audience, "sub": f"local-{role}", "iat": now,
              "exp": now + ttl_seconds, "pv_role": role, "pv_tenant": tenant, **(extra_claims or {})}
    return jwt.encode(claims, issuer.private_key, algorithm="RS256", headers={"kid": issuer.kid})


def mint_role_tokens(issuer: LocalIssuer, tenant: str = "default") -> dict[str, str]:
    return {role: mint_token(issuer, role, tenant=tenant) for role in ROLES}
