"""Bearer-token validation shared by the gRPC interceptor and the REST dependency.

A token is an RS256 JWT from the identity provider (OAuth 2.0 client credentials, for instance):
its signature is checked against the provider's JWKS, and its issuer, audience and expiry must
match the settings (``STRESS_AUTH_ISSUER``, ``STRESS_AUTH_AUDIENCE``, ``STRESS_AUTH_JWKS_URL``). Keys
are cached ``STRESS_AUTH_JWKS_CACHE_SECONDS``; a token naming an unknown key id refetches the JWKS at
most once per 30 s (PyJWKClient's cooldown), so forged key ids cannot make the service hammer the
provider. Scopes come from the ``scope`` claim (space separated, RFC 8693) or ``scp`` (a list).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import jwt

from pipelines.services.errors import PermissionDenied, Unauthenticated

# The scope each operation needs.
LOANS_READ, LOANS_WRITE, SIMULATIONS_RUN, COMPLIANCE_READ = ("loans:read", "loans:write", "simulations:run",
                                                             "compliance:read")
SIMULATIONS_READ = "simulations:read"
JWKS_REFETCH_COOLDOWN_SECONDS = 30
CLOCK_SKEW_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    """Who called: the token's subject (recorded as the actor of updates) and its scopes."""

    subject: str
    scopes: frozenset[str]


# The caller of the operation running in this context (set by the transports after authentication).
current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)


class TokenVerifier:
    """Validates bearer tokens against one issuer's JWKS."""

    def __init__(self, issuer: str, audience: str, jwks_url: str, cache_seconds: int = 300) -> None:
        missing = [name for name, value in (("STRESS_AUTH_ISSUER", issuer), ("STRESS_AUTH_AUDIENCE", audience),
                                            ("STRESS_AUTH_JWKS_URL", jwks_url)) if not value]
        if missing:
            raise ValueError(f"the services need {', '.join(missing)} to validate bearer tokens")
        self.issuer, self.audience = issuer, audience
        self.keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=cache_seconds, timeout=10,
                                    cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS)

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <jwt>`` value; raises Unauthenticated otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        try:
            key = self.keys.get_signing_key_from_jwt(token.strip())
            claims = jwt.decode(token.strip(), key.key, algorithms=["RS256"], audience=self.audience,
                                issuer=self.issuer, leeway=CLOCK_SKEW_SECONDS,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWKClientConnectionError as error:
            raise Unauthenticated(f"the identity provider's keys could not be fetched: {error}") from error
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from error
        scopes = claims.get("scope", "")
        granted = frozenset(scopes.split() if isinstance(scopes, str) else scopes) | frozenset(claims.get("scp", []))
        return Principal(subject=str(claims["sub"]), scopes=granted)


def require_scope(principal: Principal, scope: str) -> None:
    """Raise PermissionDenied unless ``principal`` was granted ``scope``."""
    if scope not in principal.scopes:
        raise PermissionDenied(scope)
