"""The dashboard's REST source returns what the in-process source does, on the seeded run.

The REST API runs under uvicorn on loopback behind the local OAuth 2.0 issuer; the source gets its
token by the client-credentials grant, as ``make dashboard`` with STRESS_DASHBOARD_API_URL does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipelines.dashboard.source import ApplicationSource, ClientCredentials, RestSource
from pipelines.services.errors import NotFound, Unauthenticated
from pipelines.services.local_issuer import AUDIENCE, OAuthIssuer
from tests.browser.conftest import free_port

CLIENT, SECRET = "dashboard", "dashboard-secret"
START_SECONDS = 60  # a guard against a server that never starts, not a measure of speed


@pytest.fixture(scope="module")
def issuer() -> Iterator[OAuthIssuer]:
    with OAuthIssuer({CLIENT: (SECRET, {"simulations:run", "compliance:read"})}) as running:
        yield running


@pytest.fixture(scope="module")
def api_url(seeded_adapters, issuer) -> Iterator[str]:
    import uvicorn

    from pipelines.services.auth import TokenVerifier
    from pipelines.services.rest import create_app

    port = free_port()
    app = create_app(seeded_adapters, TokenVerifier(issuer.issuer, AUDIENCE, issuer.jwks_url))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


def test_every_read_over_rest_equals_the_application_layer(api_url, issuer, seeded_adapters, seeded_run):
    rest = RestSource(api_url, ClientCredentials(issuer.token_url, CLIENT, SECRET))
    local = ApplicationSource(seeded_adapters)
    run_id = seeded_run.run_id
    overview = rest.overview(run_id)
    assert overview == local.overview(run_id) and overview["run_id"] == run_id
    assert rest.list_runs(5) == local.list_runs(5)
    scenario = overview["scenarios"][0]["ScenarioId"]
    assert rest.scenario(run_id, scenario) == local.scenario(run_id, scenario)
    view = local.scenario(run_id, scenario)
    segment = view["segments"][0]["Segment"]
    top = rest.contributors(run_id, scenario, segment, 5)
    assert top == local.contributors(run_id, scenario, segment, 5) and top["loans"]
    loan_id = top["loans"][0]["LoanId"]
    assert rest.loan(run_id, scenario, loan_id) == local.loan(run_id, scenario, loan_id)
    assert rest.compliance(run_id) == local.compliance(run_id)
    assert rest.compliance_history("CET1_MIN_RATIO", 5) == local.compliance_history("CET1_MIN_RATIO", 5)
    assert rest.attribution(run_id) == local.attribution(run_id)
    assert rest.allocation(run_id) == local.allocation(run_id)
    assert rest.report(run_id, "pdf") == local.report(run_id, "pdf")
    assert rest.results_file(run_id, scenario, "csv") == local.results_file(run_id, scenario, "csv")
    with pytest.raises(NotFound, match="no-such-run"):
        rest.overview("no-such-run")


def test_a_refused_client_is_unauthenticated(api_url, issuer):
    with pytest.raises(Unauthenticated, match="refused"):
        RestSource(api_url, ClientCredentials(issuer.token_url, CLIENT, "wrong")).overview("")
