"""Bearer-token validation shared by the gRPC interceptor and the REST dependency.

A token is an RS256 JWT from the identity provider (OAuth 2.0 client credentials, for instance):
its signature is checked against the provider's JWKS, and its issuer, audience and expiry must
match the settings (``STRESS_AUTH_ISSUER``, ``STRESS_AUTH_AUDIENCE``, ``STRESS_AUTH_JWKS_URL``). Keys
are cached ``STRESS_AUTH_JWKS_CACHE_SECONDS``; a token naming an unknown key id refetches the JWKS at
most once per 30 s (PyJWKClient's cooldown), so forged key ids cannot make the service hammer the
provider. Scopes come from the ``scope`` claim (space separated, RFC 8693) or ``scp`` (a list).

A verified token is remembered by its SHA-256 digest (not the token itself) until it expires, and
at most as long as the signing keys are kept, in a bounded table: a client reuses its token for
many calls, and the RS256 check costs about ten times what a cached read does. A token is never
remembered longer than an uncached check would accept it (expiry plus the clock skew), and a
revoked signing key stops being honoured for its tokens within the key cache period, as before.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
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
VERIFIED_TOKENS_KEPT = 10_000


@dataclass(frozen=True)
class Principal:
    """Who called: the token's subject (recorded as the actor of updates) and its scopes."""

    subject: str
    scopes: frozenset[str]


# The caller of the operation running in this context (set by the transports after authentication).
current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)


class TokenVerifier:
    """Validates bearer tokens against one issuer's JWKS."""

    def __init__(self, issuer: str, audience: str, jwks_url: str, cache_seconds: int = 300,
                 verified_tokens_kept: int = VERIFIED_TOKENS_KEPT) -> None:
        missing = [name for name, value in (("STRESS_AUTH_ISSUER", issuer), ("STRESS_AUTH_AUDIENCE", audience),
                                            ("STRESS_AUTH_JWKS_URL", jwks_url)) if not value]
        if missing:
            raise ValueError(f"the services need {', '.join(missing)} to validate bearer tokens")
        self.issuer, self.audience = issuer, audience
        self.cache_seconds = cache_seconds
        self.keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=cache_seconds, timeout=10,
                                    cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS)
        self.verified_tokens_kept = verified_tokens_kept
        # SHA-256 of a token -> (the wall-clock time it stops being accepted, its principal), oldest use first.
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _token(authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        return token.strip()

    def remembered(self, authorization: str | None) -> Principal | None:
        """The principal of a token verified before and still valid, without any signature check or I/O."""
        digest = hashlib.sha256(self._token(authorization).encode()).digest()
        with self._lock:
            entry = self._verified.get(digest)
            if entry is None:
                return None
            if entry[0] <= time.time():
                del self._verified[digest]
                return None
            self._verified.move_to_end(digest)
            return entry[1]

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <jwt>`` value; raises Unauthenticated otherwise."""
        remembered = self.remembered(authorization)
        if remembered is not None:
            return remembered
        token = self._token(authorization)
        try:
            key = self.keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=self.audience,
                                issuer=self.issuer, leeway=CLOCK_SKEW_SECONDS,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWKClientConnectionError as error:
            raise Unauthenticated(f"the identity provider's keys could not be fetched: {error}") from error
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from error
        scopes = claims.get("scope", "")
        granted = frozenset(scopes.split() if isinstance(scopes, str) else scopes) | frozenset(claims.get("scp", []))
        principal = Principal(subject=str(claims["sub"]), scopes=granted)
        self._remember(token, min(float(claims["exp"]) + CLOCK_SKEW_SECONDS, time.time() + self.cache_seconds),
                       principal)
        return principal

    def _remember(self, token: str, until: float, principal: Principal) -> None:
        with self._lock:
            self._verified[hashlib.sha256(token.encode()).digest()] = (until, principal)
            while len(self._verified) > self.verified_tokens_kept:
                self._verified.popitem(last=False)


def require_scope(principal: Principal, scope: str) -> None:
    """Raise PermissionDenied unless ``principal`` was granted ``scope``."""
    if scope not in principal.scopes:
        raise PermissionDenied(scope)
