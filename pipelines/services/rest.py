"""The REST transport: FastAPI under ``/api/v1``, OpenAPI at ``/api/v1/openapi.json`` (docs at ``/api/v1/docs``).

Routes only translate HTTP to the application layer and back; the application's errors become
status codes with a JSON body ``{"error": ..., "message": ...}``. Every route needs a bearer JWT
(:class:`~pipelines.services.auth.TokenVerifier`, the gRPC interceptor's validation) with the
route's scope: 401 with ``WWW-Authenticate: Bearer`` for a missing or bad token, 403 with
``error="insufficient_scope"`` for a missing scope (RFC 6750).

Per request, the hot path does one hop to a worker thread (the route, which may read a database)
and no more: a token verified before is recognised on the event loop (only a new token's signature
check and key fetch go to a thread), the application's dicts are already JSON-ready and go out as
a :class:`JSONResponse` without FastAPI's response validation (which would take a thread hop of
its own for a sync route and re-walk every value), and the body limit is a plain ASGI middleware.
"""
# No ``from __future__ import annotations``: FastAPI reads the dependencies in the annotations of the
# routes and of ``authenticate``, which name local objects (``bearer``) that string annotations lose.

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from pipelines.composition import Adapters
from pipelines.services import application
from pipelines.services.auth import (
    COMPLIANCE_READ,
    LOANS_READ,
    LOANS_WRITE,
    SIMULATIONS_RUN,
    Principal,
    TokenVerifier,
    require_scope,
)
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

PREFIX = "/api/v1"
HTTP_STATUS: dict[type[ServiceError], int] = {NotFound: 404, InvalidArgument: 422, StaleVersion: 412,
                                              FailedPrecondition: 409, Unavailable: 503, Unauthenticated: 401,
                                              PermissionDenied: 403}
MAX_BODY_BYTES = 64 * 1024
DECIMAL = r"^[+-]?[0-9]{1,20}(\.[0-9]{1,12})?$"


class LoanUpdate(BaseModel):
    """An amendment: the etag read, and the new values ({field: decimal text, or null to clear})."""

    etag: str = Field(description="The etag of the loan as read (GET); a stale one gives 412.")
    changes: dict[str, str | None] = Field(description="Updatable fields: " + ", ".join(application.UPDATABLE_FIELDS)
                                           + "; decimals as text matching " + DECIMAL)
    reason: str = Field(default="", max_length=1000)


class SimulationStart(BaseModel):
    scenario_description: str = Field(max_length=application.MAX_DESCRIPTION)
    interest_rate_scenario: str = Field(description="Parallel rate shock as a decimal fraction (0.03 = +300 bp), "
                                        "text matching " + DECIMAL)
    scenario_ids: list[str] = Field(default_factory=list, max_length=20)
    horizon_quarters: int = Field(default=0, description="Quarters to project; 0: STRESS_HORIZON_QUARTERS.")
    n_paths: int = Field(default=0, description="Monte Carlo paths (10 .. 100000); 0: STRESS_N_PATHS.")
    seed: int | None = Field(default=None, description="Random seed; null: STRESS_SEED.")
    as_of_date: str | None = None


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _json(payload: Any, status_code: int = 200) -> JSONResponse:
    """An application result (JSON-ready by the application layer's contract) as the response itself."""
    return JSONResponse(payload, status_code=status_code)


class BoundedBody:
    """Refuses a request whose declared body exceeds ``MAX_BODY_BYTES`` with 413, before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = next((value for name, value in scope["headers"] if name == b"content-length"), None)
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                response = _error(413, "payload_too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(adapters: Adapters, verifier: TokenVerifier) -> FastAPI:
    """The REST application over ``adapters``, authenticating with ``verifier``."""
    app = FastAPI(title="loanstress API", version="1.0", openapi_url=f"{PREFIX}/openapi.json",
                  docs_url=f"{PREFIX}/docs", redoc_url=None,
                  description="Loans, simulations, results and compliance status of the loanstress platform. "
                              "Every route needs an OAuth 2.0 bearer token with the scope it names.")
    bearer = HTTPBearer(auto_error=False, description="An RS256 JWT from the identity provider.")

    @app.exception_handler(ServiceError)
    def service_error(request: Request, error: ServiceError) -> JSONResponse:
        status = HTTP_STATUS.get(type(error), 500)
        if isinstance(error, Unauthenticated):
            return _error(401, "invalid_token", str(error),
                          {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{error}"'
                                               .replace("\n", " ")[:500]})
        if isinstance(error, PermissionDenied):
            return _error(403, "insufficient_scope", str(error),
                          {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{error.scope}"'})
        return _error(status, type(error).__name__, str(error))

    app.add_middleware(BoundedBody)

    def scoped(scope: str) -> Callable[..., Awaitable[Principal]]:
        async def authenticate(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                               ) -> Principal:
            if credentials is None:
                raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
            authorization = f"{credentials.scheme} {credentials.credentials}"
            principal = verifier.remembered(authorization) or await run_in_threadpool(verifier.verify, authorization)
            require_scope(principal, scope)
            return principal

        return authenticate

    @app.get(f"{PREFIX}/loans/{{loan_id}}", tags=["loans"], summary="A loan of the latest snapshot (loans:read)")
    def get_loan(loan_id: str, _: Annotated[Principal, Depends(scoped(LOANS_READ))]) -> JSONResponse:
        return _json(application.get_loan(adapters, loan_id))

    @app.patch(f"{PREFIX}/loans/{{loan_id}}", tags=["loans"],
               summary="Amend a loan; the next ingest applies it (loans:write)")
    def update_loan(loan_id: str, update: LoanUpdate,
                    principal: Annotated[Principal, Depends(scoped(LOANS_WRITE))]) -> JSONResponse:
        return _json(application.update_loan(adapters, loan_id, update.etag, update.changes,
                                             actor=principal.subject, reason=update.reason))

    @app.get(f"{PREFIX}/loans/{{loan_id}}/amendments", tags=["loans"],
             summary="The audit trail of a loan's amendments (loans:read)")
    def loan_history(loan_id: str, _: Annotated[Principal, Depends(scoped(LOANS_READ))]) -> JSONResponse:
        return _json(application.loan_history(adapters, loan_id))

    @app.post(f"{PREFIX}/simulations", tags=["simulations"], status_code=202,
              summary="Start a loan_stress_test run; returns its id at once (simulations:run)")
    def run_simulation(start: SimulationStart,
                       principal: Annotated[Principal, Depends(scoped(SIMULATIONS_RUN))]) -> JSONResponse:
        started = application.run_simulation(
            adapters, start.scenario_description, start.interest_rate_scenario, requested_by=principal.subject,
            scenario_ids=start.scenario_ids, horizon_quarters=start.horizon_quarters, n_paths=start.n_paths,
            seed=start.seed, as_of_date=start.as_of_date)
        return _json(application.get_simulation(adapters, started["simulation_id"]), status_code=202)

    @app.get(f"{PREFIX}/simulations/{{simulation_id}}", tags=["simulations"],
             summary="Status and, once succeeded, the Simulation Results Schema (simulations:run)")
    def get_simulation(simulation_id: str, _: Annotated[Principal, Depends(scoped(SIMULATIONS_RUN))],
                       page_size: Annotated[int, Query(ge=1, le=application.MAX_PAGE_SIZE)] = 100,
                       page_token: str = "") -> JSONResponse:
        return _json(application.get_simulation(adapters, simulation_id, page_size, page_token))

    @app.get(f"{PREFIX}/runs", tags=["results"], summary="The latest runs that published results (simulations:run)")
    def list_runs(_: Annotated[Principal, Depends(scoped(SIMULATIONS_RUN))],
                  limit: Annotated[int, Query(ge=1, le=application.MAX_RUNS)] = 20) -> JSONResponse:
        return _json(application.list_runs(adapters, limit))

    @app.get(f"{PREFIX}/results", tags=["results"],
             summary="Published results by run (default latest), scenario, segment, loan (simulations:run)")
    def get_results(_: Annotated[Principal, Depends(scoped(SIMULATIONS_RUN))], run_id: str = "",
                    scenario_id: str = "", segment: str = "", loan_id: str = "") -> JSONResponse:
        return _json(application.get_results(adapters, run_id=run_id, scenario_id=scenario_id, segment=segment,
                                             loan_id=loan_id))

    @app.get(f"{PREFIX}/allocation", tags=["results"],
             summary="The allocation a run's optimise step recommends under stress, beside the current book "
                     "(simulations:run)")
    def get_allocation(_: Annotated[Principal, Depends(scoped(SIMULATIONS_RUN))], run_id: str = "",
                       strategy: str = "") -> JSONResponse:
        return _json(application.get_allocation(adapters, run_id, strategy))

    @app.get(f"{PREFIX}/compliance/{{metric_id}}", tags=["compliance"],
             summary="The latest status of a compliance metric (compliance:read)")
    def check_compliance(metric_id: str, _: Annotated[Principal, Depends(scoped(COMPLIANCE_READ))]) -> JSONResponse:
        return _json(application.check_compliance(adapters, metric_id))

    @app.get(f"{PREFIX}/health", tags=["health"], summary="Liveness (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "SERVING"}

    _add_dashboard_routes(app, adapters, scoped)
    return app


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _add_dashboard_routes(app: FastAPI, adapters: Adapters, scoped: Callable[[str], Callable[..., Principal]]) -> None:
    """The reads behind the dashboard's views (``/api/v1/dashboard/...``) and the downloads; an empty
    ``run_id`` means the latest published run."""
    results_reader = Annotated[Principal, Depends(scoped(SIMULATIONS_RUN))]
    compliance_reader = Annotated[Principal, Depends(scoped(COMPLIANCE_READ))]

    @app.get(f"{PREFIX}/dashboard/overview", tags=["dashboard"],
             summary="A run's provenance, PD model and scenario comparison (simulations:run)")
    def run_overview(_: results_reader, run_id: str = "") -> dict[str, Any]:
        return application.run_overview(adapters, run_id)

    @app.get(f"{PREFIX}/dashboard/scenario", tags=["dashboard"],
             summary="Losses by segment and quarter, loss distribution, capital and macro paths (simulations:run)")
    def scenario_view(_: results_reader, scenario_id: str, run_id: str = "") -> dict[str, Any]:
        return application.scenario_view(adapters, run_id, scenario_id)

    @app.get(f"{PREFIX}/dashboard/compliance", tags=["dashboard"],
             summary="Every compliance record of a run (compliance:read)")
    def compliance_of_run(_: compliance_reader, run_id: str = "") -> dict[str, Any]:
        return application.compliance_of_run(adapters, run_id)

    @app.get(f"{PREFIX}/dashboard/compliance/{{metric_id}}/history", tags=["dashboard"],
             summary="A compliance metric over the latest runs that evaluated it (compliance:read)")
    def compliance_history(metric_id: str, _: compliance_reader,
                           runs: Annotated[int, Query(ge=1, le=application.MAX_HISTORY_RUNS)] = 20) -> dict[str, Any]:
        return application.compliance_history(adapters, metric_id, runs)

    @app.get(f"{PREFIX}/dashboard/attribution", tags=["dashboard"],
             summary="Attribution waterfalls against the previous published run (simulations:run)")
    def run_attribution(_: results_reader, run_id: str = "") -> dict[str, Any]:
        return application.run_attribution(adapters, run_id)

    @app.get(f"{PREFIX}/dashboard/contributors", tags=["dashboard"],
             summary="A segment's largest expected-loss loans in a scenario (simulations:run)")
    def top_loss_contributors(_: results_reader, scenario_id: str, segment: str, run_id: str = "",
                              limit: Annotated[int, Query(ge=1, le=application.MAX_CONTRIBUTORS)] = 10
                              ) -> dict[str, Any]:
        return application.top_loss_contributors(adapters, run_id, scenario_id, segment, limit)

    @app.get(f"{PREFIX}/dashboard/loan", tags=["dashboard"],
             summary="A loan's balance and PD term structure in a scenario (simulations:run)")
    def loan_projection(_: results_reader, scenario_id: str, loan_id: str, run_id: str = "") -> dict[str, Any]:
        return application.loan_projection(adapters, run_id, scenario_id, loan_id)

    @app.get(f"{PREFIX}/dashboard/allocation", tags=["dashboard"],
             summary="The optimise step's recommended allocation and efficient frontier (simulations:run)")
    def run_allocation(_: results_reader, run_id: str = "") -> dict[str, Any]:
        return application.run_allocation(adapters, run_id)

    @app.get(f"{PREFIX}/reports", tags=["downloads"], response_class=Response,
             summary="A run's report, HTML or PDF (simulations:run)")
    def run_report(_: results_reader, run_id: str = "", format: str = "html") -> Response:
        return _download(*application.run_report(adapters, run_id, format))

    @app.get(f"{PREFIX}/results/file", tags=["downloads"], response_class=Response,
             summary="A scenario's per-loan results, CSV or Parquet (simulations:run)")
    def run_results_file(_: results_reader, scenario_id: str, run_id: str = "",
                         format: str = "parquet") -> Response:
        return _download(*application.run_results_file(adapters, run_id, scenario_id, format))


def create_configured_app(adapters: Adapters) -> FastAPI:
    """The REST application with the token validation the deployment's settings name (STRESS_AUTH_*)."""
    settings = adapters.settings
    return create_app(adapters, TokenVerifier(settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url,
                                              settings.auth_jwks_cache_seconds))
