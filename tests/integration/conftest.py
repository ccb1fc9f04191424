"""Fixtures of the integration tests: the adapters on embedded stores or on PostgreSQL and Redis, an
OAuth 2.0 authorization server on loopback, and a private PostgreSQL cluster that speaks TLS only."""

from __future__ import annotations

import os

import pytest
from services_support import adapters_fixture, fresh_postgres_database_fixture
from tls_postgres import ClusterUnavailable, TlsPostgres

from pipelines.services.certificates import CertificateAuthority
from pipelines.services.local_issuer import ALL_SCOPES, OAuthIssuer

fresh_postgres_database = pytest.fixture(fresh_postgres_database_fixture)
adapters = pytest.fixture(params=["embedded", "postgres_redis"])(adapters_fixture)

# Registered clients: one with every scope, one that may only read loans.
CLIENTS = {"risk-engine": ("s3cret-engine", ALL_SCOPES), "loan-viewer": ("s3cret-viewer", {"loans:read"})}


@pytest.fixture(scope="module")
def oauth_issuer():
    with OAuthIssuer(CLIENTS) as issuer:
        yield issuer


@pytest.fixture
def token_verifier(oauth_issuer):
    from pipelines.services.auth import TokenVerifier
    from pipelines.services.local_issuer import AUDIENCE

    return TokenVerifier(oauth_issuer.issuer, AUDIENCE, oauth_issuer.jwks_url)


def client_credentials_token(issuer: OAuthIssuer, client_id: str, scope: str | None = None) -> str:
    """An access token obtained from ``issuer`` by the client-credentials grant, over HTTP."""
    import httpx

    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    response = httpx.post(issuer.token_url, data=form, auth=(client_id, CLIENTS[client_id][0]))
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture(scope="session")
def certificate_authority(tmp_path_factory) -> CertificateAuthority:
    """A CA made for this test run; its server certificates name localhost and 127.0.0.1."""
    return CertificateAuthority(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_postgres():
    """A throwaway hostssl-only PostgreSQL cluster on a free loopback port, its certificate signed by a CA
    made for the session; stopped and removed at the end. Fails under CI=true when it cannot start, else skips."""
    server = TlsPostgres()
    try:
        server.start()
    except ClusterUnavailable as error:
        server.stop()
        message = f"the private TLS PostgreSQL cluster did not start: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()
