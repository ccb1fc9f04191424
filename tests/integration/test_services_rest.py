"""The REST transport, served by uvicorn on loopback: every operation, status codes, OpenAPI, and bearer
tokens from a real OAuth 2.0 authorization server (tampered, expired, wrong audience, wrong scope)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from conftest import client_credentials_token
from services_support import RUN_ID, ingest_tape, publish_known_results, record

from pipelines.compliance.rules import Status

GIVE_UP_SECONDS = 600  # a guard against a hung server or simulation process, not a measure of speed


@pytest.fixture
def api(adapters, token_verifier):
    """An httpx client of the REST app served by uvicorn on a free loopback port."""
    import uvicorn

    from pipelines.services.rest import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(adapters, token_verifier), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join()


@pytest.fixture
def auth(oauth_issuer):
    return {"Authorization": f"Bearer {client_credentials_token(oauth_issuer, 'risk-engine')}"}


def test_loans_over_rest(api, auth, adapters, valid_tape_rows, tmp_path, write_csv):
    assert api.get("/loans/M-0001", headers=auth).status_code == 409  # no snapshot yet
    manifest = ingest_tape(valid_tape_rows, tmp_path, write_csv, "first")
    loan = api.get("/loans/H-0001", headers=auth).json()
    assert loan["loan"]["InterestRate"] == "0.08990000" and loan["loan"]["CollateralValue"] == "390000.00"
    assert loan["etag"] == f"{manifest['snapshot_id']}.0"
    response = api.patch("/loans/H-0001", headers=auth, json={
        "etag": loan["etag"], "changes": {"InterestRate": "0.0950", "CurrentBalance": "36000.00"},
        "reason": "rate reset"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["loan"]["InterestRate"] == "0.0950" and updated["version"] == 1
    assert updated["amendment"]["changes"]["CurrentBalance"] == {"old": "35200.00", "new": "36000.00"}
    (history,) = api.get("/loans/H-0001/amendments", headers=auth).json()
    assert history["actor"] == "risk-engine" and history["reason"] == "rate reset" and history["status"] == "pending"
    stale = api.patch("/loans/H-0001", headers=auth, json={"etag": loan["etag"], "changes": {"InterestRate": "0.1"}})
    assert stale.status_code == 412 and "current etag" in stale.json()["message"]
    for changes, fragment in [({"InterestRate": "NaN"}, "not a decimal"), ({"InterestRate": "Infinity"},
                              "not a decimal"), ({"InterestRate": ""}, "not a decimal"),
                              ({"CurrentBalance": "1e5"}, "not a decimal"), ({"LoanAmount": "1.00"}, "updatable")]:
        bad = api.patch("/loans/H-0001", headers=auth, json={"etag": updated["etag"], "changes": changes})
        assert bad.status_code == 422 and fragment in bad.json()["message"], bad.text
    assert api.patch("/loans/H-0001", headers=auth, json={"etag": updated["etag"]}).status_code == 422
    assert api.get("/loans/NOPE", headers=auth).status_code == 404
    oversize = api.patch("/loans/H-0001", headers=auth, content=b"{" + b" " * 70_000 + b"}")
    assert oversize.status_code == 413
    assert len(adapters.service_store.amendments_of_loan("H-0001")) == 1  # nothing half-written


def test_results_runs_and_compliance_over_rest(api, auth, adapters):
    assert api.get("/results", headers=auth).status_code == 404
    assert api.get("/compliance/CET1_MIN", headers=auth).status_code == 404
    result = publish_known_results(adapters)
    adapters.results_store.save_compliance(RUN_ID, "loan_stress_test", [
        record(RUN_ID, Status.COMPLIANT, 0.08, "2026_baseline", 1)])
    (run,) = api.get("/runs", headers=auth).json()
    assert run["simulations"] == {"2026_severely_adverse": result["SimulationId"]}
    found = api.get("/results", headers=auth, params={"scenario_id": "2026_severely_adverse", "segment": "heloc",
                                                      "loan_id": "A-1"}).json()
    (scenario,) = found["results"]
    assert scenario["OverallImpact"] == "135.00" and scenario["Segment"]["ExpectedLoss"] == "60.00"
    assert scenario["Loan"]["ProjectedDefaultRisk"] == "0.1250000000"
    assert api.get("/results", headers=auth, params={"loan_id": "Z"}).status_code == 404
    status = api.get("/compliance/CET1_MIN", headers=auth).json()
    assert (status["Status"], status["ActualValue"], status["RunId"]) == ("Compliant", "0.08000000", RUN_ID)
    assert api.get("/runs", headers=auth, params={"limit": 0}).status_code == 422


def test_run_and_get_simulation_over_rest(api, auth, adapters):
    bad = api.post("/simulations", headers=auth, json={"scenario_description": "x", "interest_rate_scenario": "NaN"})
    assert bad.status_code == 422 and "not a decimal" in bad.json()["message"]
    assert api.get("/simulations/svc__none", headers=auth).status_code == 404
    started = api.post("/simulations", headers=auth, json={"scenario_description": "Rates -100 bp",
                                                            "interest_rate_scenario": "-0.01"})
    assert started.status_code == 202 and started.json()["status"] == "queued"
    simulation_id = started.json()["simulation_id"]
    # Horizon, paths and seed left out travel unset, so the run's plan takes the STRESS_* settings.
    conf = adapters.service_store.simulation_request(simulation_id)["conf"]
    assert (conf["horizon_quarters"], conf["n_paths"], conf["seed"]) == (0, 0, None)
    deadline = time.monotonic() + GIVE_UP_SECONDS
    view = started.json()
    while view["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(1)
        view = api.get(f"/simulations/{simulation_id}", headers=auth).json()
    # No loan tape in this data home: the run starts, then fails in its ingest, and says so.
    assert view["status"] == "failed" and "loan_stress_test" in view["error"]
    assert api.get(f"/simulations/{simulation_id}", headers=auth, params={"page_size": 0}).status_code == 422


def test_allocation_over_rest(api, auth, adapters, oauth_issuer):
    from services_support import publish_known_allocation

    assert api.get("/allocation", headers=auth).status_code == 404
    publish_known_results(adapters)
    pending = api.get("/allocation", headers=auth, params={"run_id": RUN_ID})
    assert pending.status_code == 409 and "optimise step" in pending.json()["message"]
    publish_known_allocation(adapters)
    response = api.get("/allocation", headers=auth)
    assert response.status_code == 200, response.text
    allocation = response.json()
    assert (allocation["run_id"], allocation["strategy"], allocation["status"]) == (RUN_ID, "max_return", "optimal")
    assert [a["recommended"] for a in allocation["assets"]] == ["130.00", "120.00"]
    assert allocation["change"]["expected_return"] == "-0.30" and allocation["current"]["min_cet1_ratio"] is None
    assert {b["name"] for b in allocation["binding"]} == {"total budget", "minimum budget use", "growth bound auto"}
    chosen = api.get("/allocation", headers=auth, params={"run_id": RUN_ID, "strategy": "min_cvar"}).json()
    assert chosen["strategy"] == "min_cvar"
    bad = api.get("/allocation", headers=auth, params={"strategy": "max_luck"})
    assert bad.status_code == 422 and "max_luck" in bad.json()["message"]
    assert api.get("/allocation", headers=auth, params={"run_id": "nope"}).status_code == 404
    viewer = {"Authorization": f"Bearer {oauth_issuer.mint('viewer', {'loans:read'})}"}
    assert api.get("/allocation", headers=viewer).status_code == 403


def test_tokens_and_scopes_over_rest(api, oauth_issuer):
    good = oauth_issuer.mint("risk-engine", {"loans:read"})
    header, payload, signature = good.split(".")
    tampered = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": f"Bearer {tampered}"},
                    {"Authorization": "Bearer " + oauth_issuer.mint("x", {"loans:read"}, exp=int(time.time()) - 120)},
                    {"Authorization": "Bearer " + oauth_issuer.mint("x", {"loans:read"}, aud="another-api")},
                    {"Authorization": "Bearer " + oauth_issuer.mint("x", {"loans:read"}, iss="http://evil")}):
        response = api.get("/loans/M-0001", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    viewer = {"Authorization": f"Bearer {client_credentials_token(oauth_issuer, 'loan-viewer')}"}
    assert api.get("/loans/M-0001", headers=viewer).status_code == 409  # allowed; no snapshot yet
    denied = api.patch("/loans/M-0001", headers=viewer, json={"etag": "x", "changes": {"InterestRate": "0.05"}})
    assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope", scope="loans:write"' in denied.headers["WWW-Authenticate"]
    assert api.get("/compliance/X", headers=viewer).status_code == 403
    assert api.get("/health").json() == {"status": "SERVING"}


def test_unknown_key_ids_refetch_the_jwks_at_most_once_per_cooldown(api, oauth_issuer):
    before = oauth_issuer.jwks_fetches
    for attempt in range(5):
        token = oauth_issuer.mint("x", {"loans:read"}, kid=f"forged-{attempt}")
        assert api.get("/loans/M-0001", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert oauth_issuer.jwks_fetches - before <= 2  # the first load of the set, and one forced refresh


def test_openapi_documents_every_operation(api):
    document = api.get("/openapi.json").json()
    assert {"/api/v1/loans/{loan_id}", "/api/v1/loans/{loan_id}/amendments", "/api/v1/simulations",
            "/api/v1/simulations/{simulation_id}", "/api/v1/runs", "/api/v1/results", "/api/v1/allocation",
            "/api/v1/compliance/{metric_id}"} <= set(document["paths"])
    assert set(document["paths"]["/api/v1/loans/{loan_id}"]) == {"get", "patch"}
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_airflow_plugin_mounts_the_protected_api_only_when_tokens_can_be_checked(oauth_issuer, monkeypatch,
                                                                               tmp_path):
    import importlib.util

    from fastapi.testclient import TestClient

    from pipelines.services.local_issuer import AUDIENCE
    from pipelines.settings import REPO_ROOT, get_settings

    def load_plugin():
        get_settings.cache_clear()
        spec = importlib.util.spec_from_file_location("loanstress_services_plugin",
                                                      REPO_ROOT / "plugins" / "loanstress_services.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.LoanstressServicesPlugin

    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STRESS_AUTH_JWKS_URL", raising=False)
    dashboard, reports = load_plugin().fastapi_apps  # behind Airflow's own login: dashboard and reports only
    assert (dashboard["url_prefix"], reports["url_prefix"]) == ("/loanstress/dashboard", "/loanstress-reports")
    assert TestClient(dashboard["app"]).get("/_dash-layout").status_code == 401  # no Airflow token
    for name, value in (("STRESS_AUTH_ISSUER", oauth_issuer.issuer), ("STRESS_AUTH_AUDIENCE", AUDIENCE),
                        ("STRESS_AUTH_JWKS_URL", oauth_issuer.jwks_url)):
        monkeypatch.setenv(name, value)
    dashboard, _, mounted = load_plugin().fastapi_apps  # the dashboard first: /loanstress would match it too
    assert (dashboard["url_prefix"], mounted["url_prefix"]) == ("/loanstress/dashboard", "/loanstress")
    client = TestClient(mounted["app"])
    assert client.get("/api/v1/compliance/CET1_MIN").status_code == 401
    token = client_credentials_token(oauth_issuer, "risk-engine")
    assert client.get("/api/v1/compliance/CET1_MIN", headers={"Authorization": f"Bearer {token}"}).status_code == 404
    get_settings.cache_clear()
