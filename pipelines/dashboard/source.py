"""Where the dashboard's data comes from: the application layer's operations, in process or over REST.

Both sources offer the same reads and return the same JSON documents, because both end in the same
functions of :mod:`pipelines.services.application`:

- :class:`ApplicationSource` calls them directly. The Airflow plugin uses it: the dashboard is mounted
  in the API server's process beside the REST API, and a loopback HTTP call to itself would only add
  a token round trip.
- :class:`RestSource` calls the REST API (``/api/v1``) with a bearer token it gets by the OAuth 2.0
  client-credentials grant (RFC 6749 section 4.4) from the configured token endpoint, renewed shortly
  before it expires. ``make dashboard`` uses it when ``STRESS_DASHBOARD_API_URL`` is set, so a
  dashboard can run on a host that has no access to the stores at all.

Errors are the application's (:mod:`pipelines.services.errors`) in both cases: the REST source maps
the status codes back.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.services import application
from pipelines.services.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
    StaleVersion,
    Unauthenticated,
    Unavailable,
)

if TYPE_CHECKING:
    import httpx

    from pipelines.composition import Adapters

TOKEN_RENEWAL_MARGIN_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 30
ERRORS_BY_STATUS: dict[int, type[ServiceError]] = {404: NotFound, 422: InvalidArgument, 412: StaleVersion,
                                                   409: FailedPrecondition, 503: Unavailable, 401: Unauthenticated}
DASHBOARD_SCOPES = "simulations:run compliance:read"
Download = tuple[bytes, str, str]  # content, media type, file name


class DashboardSource(Protocol):
    """The reads the dashboard's views make; an empty ``run_id`` means the latest published run."""

    def list_runs(self, limit: int) -> list[dict[str, Any]]: ...
    def overview(self, run_id: str) -> dict[str, Any]: ...
    def scenario(self, run_id: str, scenario_id: str) -> dict[str, Any]: ...
    def compliance(self, run_id: str) -> dict[str, Any]: ...
    def compliance_history(self, metric_id: str, runs: int) -> dict[str, Any]: ...
    def attribution(self, run_id: str) -> dict[str, Any]: ...
    def contributors(self, run_id: str, scenario_id: str, segment: str, limit: int) -> dict[str, Any]: ...
    def loan(self, run_id: str, scenario_id: str, loan_id: str) -> dict[str, Any]: ...
    def allocation(self, run_id: str) -> dict[str, Any]: ...
    def report(self, run_id: str, report_format: str) -> Download: ...
    def results_file(self, run_id: str, scenario_id: str, file_format: str) -> Download: ...


class ApplicationSource:
    """The application layer's operations called in this process, over ``adapters``."""

    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    def list_runs(self, limit: int) -> list[dict[str, Any]]:
        return application.list_runs(self.adapters, limit)

    def overview(self, run_id: str) -> dict[str, Any]:
        return application.run_overview(self.adapters, run_id)

    def scenario(self, run_id: str, scenario_id: str) -> dict[str, Any]:
        return application.scenario_view(self.adapters, run_id, scenario_id)

    def compliance(self, run_id: str) -> dict[str, Any]:
        return application.compliance_of_run(self.adapters, run_id)

    def compliance_history(self, metric_id: str, runs: int) -> dict[str, Any]:
        return application.compliance_history(self.adapters, metric_id, runs)

    def attribution(self, run_id: str) -> dict[str, Any]:
        return application.run_attribution(self.adapters, run_id)

    def contributors(self, run_id: str, scenario_id: str, segment: str, limit: int) -> dict[str, Any]:
        return application.top_loss_contributors(self.adapters, run_id, scenario_id, segment, limit)

    def loan(self, run_id: str, scenario_id: str, loan_id: str) -> dict[str, Any]:
        return application.loan_projection(self.adapters, run_id, scenario_id, loan_id)

    def allocation(self, run_id: str) -> dict[str, Any]:
        return application.run_allocation(self.adapters, run_id)

    def report(self, run_id: str, report_format: str) -> Download:
        return application.run_report(self.adapters, run_id, report_format)

    def results_file(self, run_id: str, scenario_id: str, file_format: str) -> Download:
        return application.run_results_file(self.adapters, run_id, scenario_id, file_format)


class ClientCredentials:
    """Bearer tokens of one OAuth 2.0 client from a token endpoint, kept until shortly before they expire."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str = DASHBOARD_SCOPES) -> None:
        missing = [name for name, value in (("STRESS_DASHBOARD_TOKEN_URL", token_url),
                                            ("STRESS_DASHBOARD_CLIENT_ID", client_id),
                                            ("STRESS_DASHBOARD_CLIENT_SECRET", client_secret)) if not value]
        if missing:
            raise ValueError(f"the dashboard needs {', '.join(missing)} to get a token for the REST API")
        self.token_url, self.client_id, self.client_secret, self.scope = token_url, client_id, client_secret, scope
        self._token, self._expires_at = "", 0.0
        self._lock = threading.Lock()

    def token(self, http: httpx.Client) -> str:
        with self._lock:
            if time.monotonic() < self._expires_at - TOKEN_RENEWAL_MARGIN_SECONDS:
                return self._token
            response = http.post(self.token_url, data={"grant_type": "client_credentials", "scope": self.scope},
                                 auth=(self.client_id, self.client_secret))
            if response.status_code != 200:
                raise Unauthenticated(f"the token endpoint {self.token_url} refused the dashboard's client "
                                      f"{self.client_id!r}: {response.status_code} {response.text[:200]}")
            grant = response.json()
            self._token = grant["access_token"]
            self._expires_at = time.monotonic() + float(grant.get("expires_in", 300))
            return self._token


class RestSource:
    """The REST API at ``base_url`` (``http(s)://host:port``; routes under ``/api/v1``), with bearer tokens.

    Over HTTPS the API's and the token endpoint's certificates are verified against ``ca_path``
    (``STRESS_TLS_CA_PATH``: the services' private CA), else against the system's trust store.
    """

    def __init__(self, base_url: str, credentials: ClientCredentials, http: httpx.Client | None = None,
                 ca_path: str = "") -> None:
        import httpx

        from pipelines.services.tls import client_verification

        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.http = http or httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, verify=client_verification(ca_path))

    def _get(self, path: str, **params: Any) -> httpx.Response:
        import httpx

        try:
            response = self.http.get(f"{self.base_url}/api/v1{path}", params=params,
                                     headers={"Authorization": f"Bearer {self.credentials.token(self.http)}"})
        except httpx.HTTPError as error:
            raise Unavailable(f"the REST API at {self.base_url} is unreachable: {error}") from error
        if response.status_code == 200:
            return response
        message = response.text[:500]
        if response.headers.get("content-type", "").startswith("application/json"):
            message = response.json().get("message", message)
        if response.status_code == 403:
            raise PermissionDenied(response.headers.get("www-authenticate", "").rpartition('scope="')[2].rstrip('"'))
        error_type = ERRORS_BY_STATUS.get(response.status_code, Unavailable)
        raise error_type([message]) if error_type is InvalidArgument else error_type(message)

    def _download(self, path: str, **params: Any) -> Download:
        response = self._get(path, **params)
        filename = response.headers.get("content-disposition", "").partition('filename="')[2].rstrip('"')
        return response.content, response.headers["content-type"], filename

    def list_runs(self, limit: int) -> list[dict[str, Any]]:
        return self._get("/runs", limit=limit).json()

    def overview(self, run_id: str) -> dict[str, Any]:
        return self._get("/dashboard/overview", run_id=run_id).json()

    def scenario(self, run_id: str, scenario_id: str) -> dict[str, Any]:
        return self._get("/dashboard/scenario", run_id=run_id, scenario_id=scenario_id).json()

    def compliance(self, run_id: str) -> dict[str, Any]:
        return self._get("/dashboard/compliance", run_id=run_id).json()

    def compliance_history(self, metric_id: str, runs: int) -> dict[str, Any]:
        return self._get(f"/dashboard/compliance/{metric_id}/history", runs=runs).json()

    def attribution(self, run_id: str) -> dict[str, Any]:
        return self._get("/dashboard/attribution", run_id=run_id).json()

    def contributors(self, run_id: str, scenario_id: str, segment: str, limit: int) -> dict[str, Any]:
        return self._get("/dashboard/contributors", run_id=run_id, scenario_id=scenario_id, segment=segment,
                         limit=limit).json()

    def loan(self, run_id: str, scenario_id: str, loan_id: str) -> dict[str, Any]:
        return self._get("/dashboard/loan", run_id=run_id, scenario_id=scenario_id, loan_id=loan_id).json()

    def allocation(self, run_id: str) -> dict[str, Any]:
        return self._get("/dashboard/allocation", run_id=run_id).json()

    def report(self, run_id: str, report_format: str) -> Download:
        return self._download("/reports", run_id=run_id, format=report_format)

    def results_file(self, run_id: str, scenario_id: str, file_format: str) -> Download:
        return self._download("/results/file", run_id=run_id, scenario_id=scenario_id, format=file_format)
