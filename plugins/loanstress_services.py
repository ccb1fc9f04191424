"""Airflow plugin: the loanstress REST API, the run reports and the runs' extra links in the Airflow UI.

- ``/loanstress/api/v1``: the REST API. Airflow does not authenticate mounted FastAPI apps, so the
  app carries its own bearer-token validation (the same as ``make api``). Without
  STRESS_AUTH_JWKS_URL it is not mounted: the API is never served unprotected.
- ``/loanstress-reports``: each ``loan_stress_test`` run's HTML and PDF report, behind Airflow's own
  authentication (:mod:`pipelines.airflow_ui.reports`).
- Global operator extra links on every task of a ``loan_stress_test`` run: its dashboard page
  (STRESS_DASHBOARD_URL) and its report (:mod:`pipelines.airflow_ui.links`).
"""

from __future__ import annotations

import logging

from airflow.plugins_manager import AirflowPlugin

from pipelines.airflow_ui.links import REPORTS_URL_PREFIX, stress_run_links
from pipelines.airflow_ui.reports import ReportsApp
from pipelines.composition import current_adapters

log = logging.getLogger(__name__)


def _fastapi_apps() -> list[dict]:
    apps = [{"app": ReportsApp(), "url_prefix": REPORTS_URL_PREFIX, "name": "loanstress reports"}]
    adapters = current_adapters()
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
