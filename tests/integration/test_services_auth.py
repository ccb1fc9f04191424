"""Bearer-token validation's memory of verified tokens, against the OAuth 2.0 issuer on loopback.

The memory must never accept what a full check would refuse: a token is remembered only after it
passed, until its expiry (plus the clock skew the full check allows) and within the key cache period,
and the table is bounded.
"""

from __future__ import annotations

import time

import pytest

from pipelines.services import auth
from pipelines.services.auth import CLOCK_SKEW_SECONDS, TokenVerifier
from pipelines.services.errors import Unauthenticated
from pipelines.services.local_issuer import AUDIENCE


def verifier_of(issuer, **options) -> TokenVerifier:
    return TokenVerifier(issuer.issuer, AUDIENCE, issuer.jwks_url, **options)


def test_a_verified_token_is_remembered_and_a_refused_one_is_not(oauth_issuer):
    verifier = verifier_of(oauth_issuer)
    token = oauth_issuer.mint("analyst", {"loans:read"})
    assert verifier.remembered(f"Bearer {token}") is None
    principal = verifier.verify(f"Bearer {token}")
    assert verifier.remembered(f"Bearer {token}") == principal
    assert principal.subject == "analyst" and principal.scopes == {"loans:read"}
    header, payload, signature = token.split(".")
    tampered = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    for _ in range(2):  # refused every time: a failed check is never remembered
        with pytest.raises(Unauthenticated):
            verifier.verify(f"Bearer {tampered}")
    assert verifier.remembered(f"Bearer {tampered}") is None
    with pytest.raises(Unauthenticated, match="bearer token is required"):
        verifier.remembered("Basic abc")


def test_a_remembered_token_is_forgotten_when_it_expires(oauth_issuer, monkeypatch):
    verifier = verifier_of(oauth_issuer, cache_seconds=3600)
    now = time.time()
    token = oauth_issuer.mint("analyst", {"loans:read"}, exp=int(now) + 60)
    verifier.verify(f"Bearer {token}")
    monkeypatch.setattr(auth.time, "time", lambda: int(now) + 60 + CLOCK_SKEW_SECONDS - 1)
    assert verifier.remembered(f"Bearer {token}") is not None
    monkeypatch.setattr(auth.time, "time", lambda: int(now) + 60 + CLOCK_SKEW_SECONDS + 1)
    assert verifier.remembered(f"Bearer {token}") is None


def test_a_remembered_token_is_forgotten_after_the_key_cache_period(oauth_issuer, monkeypatch):
    verifier = verifier_of(oauth_issuer, cache_seconds=120)
    token = oauth_issuer.mint("analyst", {"loans:read"})  # valid far longer than 120 s
    now = time.time()
    verifier.verify(f"Bearer {token}")
    monkeypatch.setattr(auth.time, "time", lambda: now + 121)
    assert verifier.remembered(f"Bearer {token}") is None


def test_the_memory_is_bounded_and_forgets_the_least_recently_used(oauth_issuer):
    verifier = verifier_of(oauth_issuer, verified_tokens_kept=2)
    first, second, third = (oauth_issuer.mint(f"client-{i}", {"loans:read"}) for i in range(3))
    verifier.verify(f"Bearer {first}")
    verifier.verify(f"Bearer {second}")
    assert verifier.remembered(f"Bearer {first}") is not None  # first is now the most recently used
    verifier.verify(f"Bearer {third}")
    assert verifier.remembered(f"Bearer {second}") is None
    assert verifier.remembered(f"Bearer {first}") is not None and verifier.remembered(f"Bearer {third}") is not None
