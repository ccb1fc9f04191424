"""Airflow plugin: the loanstress dashboard and REST API in the Airflow API server.

- The dashboard (Plotly Dash, a WSGI app, mounted through a2wsgi) at ``/loanstress/dashboard``, reading
  the application layer in the API server's process. Airflow does not authenticate mounted apps, so
  every request is checked here with Airflow's own auth manager: the JWT of the ``Authorization:
  Bearer`` header, else of the ``_token`` cookie the Airflow UI sets at login (the precedence of
  Airflow's ``get_user``), must be valid, and the user must be allowed to read ``loan_stress_test``'s
  runs. It is reachable from the UI's navigation and, on a dag run's page, as a tab showing that
  run's page (``/loanstress/dashboard/runs/{RUN_ID}``; external views, Airflow 3.1+).
- The REST API at ``/loanstress/api/v1``, with its own bearer-token validation (the same as ``make
  api``). Without STRESS_AUTH_JWKS_URL it is not mounted: the API is never served unprotected.
- ``/loanstress-reports``: each ``loan_stress_test`` run's HTML and PDF report, behind Airflow's own
  authentication (:mod:`pipelines.airflow_ui.reports`).
- Global operator extra links on every task of a ``loan_stress_test`` run: its dashboard page
  (STRESS_DASHBOARD_URL, by default the mounted dashboard) and its report (:mod:`pipelines.airflow_ui.links`).

The dashboard is mounted first: Starlette matches mounts in order, and ``/loanstress`` (the API's
prefix) would otherwise take ``/loanstress/dashboard`` too.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from pipelines.airflow_ui.links import DASHBOARD_URL_PREFIX, REPORTS_URL_PREFIX, STRESS_DAG_ID, stress_run_links
from pipelines.airflow_ui.reports import ReportsApp
from pipelines.composition import Adapters, current_adapters

log = logging.getLogger(__name__)

DASHBOARD_PREFIX = DASHBOARD_URL_PREFIX


class LazyDashboard:
    """The dashboard's WSGI app, built at its first request (every Airflow process imports plugins; only the
    API server serves the dashboard, so only it pays for importing Dash)."""

    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters
        self._server: Any = None
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            if self._server is None:
                from pipelines.dashboard.app import create_dashboard_app
                from pipelines.dashboard.source import ApplicationSource

                self._server = create_dashboard_app(ApplicationSource(self.adapters),
                                                    requests_pathname_prefix=f"{DASHBOARD_PREFIX}/").server
        return self._server(environ, start_response)


async def airflow_user(authorization: str | None, cookie_token: str | None) -> Any:
    """The Airflow user of a request's bearer token, else of its ``_token`` cookie; None when neither is valid."""
    import jwt
    from airflow.api_fastapi.app import get_auth_manager

    scheme, _, bearer = (authorization or "").partition(" ")
    token = bearer.strip() if scheme.lower() == "bearer" and bearer.strip() else cookie_token
    if not token:
        return None
    try:
        return await get_auth_manager().get_user_from_token(token)
    except jwt.PyJWTError:
        return None


def may_read_stress_runs(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=STRESS_DAG_ID), user=user)


def dashboard_app(adapters: Adapters) -> Any:
    """The dashboard behind Airflow's authentication, as a FastAPI app to mount at :data:`DASHBOARD_PREFIX`."""
    from a2wsgi import WSGIMiddleware
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, RedirectResponse

    app = FastAPI(title="loanstress dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def airflow_authentication(request: Request, call_next: Any) -> Any:
        user = await airflow_user(request.headers.get("authorization"), request.cookies.get(COOKIE_NAME_JWT_TOKEN))
        if user is None:
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                from airflow.api_fastapi.app import get_auth_manager

                return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)))
            return PlainTextResponse("log in to Airflow first: no valid Airflow token", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if not may_read_stress_runs(user):
            return PlainTextResponse(f"your Airflow user may not read {STRESS_DAG_ID} runs", status_code=403)
        return await call_next(request)

    app.mount("/", WSGIMiddleware(LazyDashboard(adapters)))
    return app


def _fastapi_apps() -> list[dict]:
    adapters = current_adapters()
    apps = [{"app": dashboard_app(adapters), "url_prefix": DASHBOARD_PREFIX, "name": "loanstress dashboard"},
            {"app": ReportsApp(), "url_prefix": REPORTS_URL_PREFIX, "name": "loanstress reports"}]
    if not adapters.settings.auth_jwks_url:
        log.warning("loanstress REST API not mounted: set STRESS_AUTH_ISSUER, STRESS_AUTH_AUDIENCE and "
                    "STRESS_AUTH_JWKS_URL to serve it behind bearer tokens")
        return apps
    from pipelines.services.rest import create_configured_app

    return [*apps, {"app": create_configured_app(adapters), "url_prefix": "/loanstress", "name": "loanstress API"}]


class LoanstressServicesPlugin(AirflowPlugin):
    name = "loanstress_services"
    fastapi_apps = _fastapi_apps()
    global_operator_extra_links = stress_run_links()
    external_views = [  # noqa: RUF012 - Airflow reads the plugin's class attributes
        {"name": "Stress test dashboard", "href": f"{DASHBOARD_PREFIX}/", "destination": "nav",
         "category": "browse", "url_route": "loanstress-dashboard"},
        {"name": "Stress dashboard", "href": f"{DASHBOARD_PREFIX}/runs/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "loanstress-run-dashboard"},
    ]
