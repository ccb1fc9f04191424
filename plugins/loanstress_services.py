"""Airflow plugin: the loanstress REST API mounted in the Airflow API server at ``/loanstress/api/v1``.

Airflow does not authenticate mounted FastAPI apps, so the app carries its own bearer-token
validation (the same as ``make api``). Without STRESS_AUTH_JWKS_URL nothing is mounted: the API is
never served unprotected.
"""

from __future__ import annotations

import logging

from airflow.plugins_manager import AirflowPlugin

from pipelines.composition import current_adapters

log = logging.getLogger(__name__)


def _fastapi_apps() -> list[dict]:
    adapters = current_adapters()
    if not adapters.settings.auth_jwks_url:
        log.warning("loanstress REST API not mounted: set STRESS_AUTH_ISSUER, STRESS_AUTH_AUDIENCE and "
                    "STRESS_AUTH_JWKS_URL to serve it behind bearer tokens")
        return []
    from pipelines.services.rest import create_configured_app

    return [{"app": create_configured_app(adapters), "url_prefix": "/loanstress", "name": "loanstress API"}]


class LoanstressServicesPlugin(AirflowPlugin):
    name = "loanstress_services"
    fastapi_apps = _fastapi_apps()
