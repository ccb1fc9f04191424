"""The gRPC transport: LoanService, SimulationService, ComplianceService, grpc.health.v1.Health and reflection.

Servicers only translate messages to the application layer's arguments and its dicts back to
messages; :func:`_translated` maps the application's errors to status codes. Authentication is a
server interceptor (:class:`BearerTokenInterceptor`) with the REST API's token validation; health
checks and server reflection (``grpc.reflection.v1alpha``) pass without a token. TLS when the
certificate and key are configured.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pyarrow as pa
from grpc_reflection.v1alpha import reflection

from pipelines.composition import Adapters
from pipelines.data.contract import FIELDS
from pipelines.services import application
from pipelines.services.auth import (
    COMPLIANCE_READ,
    LOANS_READ,
    LOANS_WRITE,
    SIMULATIONS_RUN,
    TokenVerifier,
    current_principal,
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
from pipelines.services.grpc_gen.grpc.health.v1 import health_pb2, health_pb2_grpc
from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2 as pb
from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2_grpc as pb_grpc

STATUS_OF_ERROR: dict[type[ServiceError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND, InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    StaleVersion: grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE, Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
SCOPE_OF_METHOD = {
    "/loanstress.v1.LoanService/GetLoanDetails": LOANS_READ, "/loanstress.v1.LoanService/UpdateLoan": LOANS_WRITE,
    **{f"/loanstress.v1.SimulationService/{name}": SIMULATIONS_RUN
       for name in ("RunSimulation", "GetSimulation", "WatchSimulation", "ListRuns", "GetResults", "GetAllocation")},
    "/loanstress.v1.ComplianceService/CheckCompliance": COMPLIANCE_READ,
}
# Calls that need no token: health checks (probes of load balancers and orchestrators) and reflection,
# which only describes the published .proto files (tools such as grpcurl list and call the services with it).
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/", f"/{reflection.SERVICE_NAME}/")
SERVICE_NAMES = ("loanstress.v1.LoanService", "loanstress.v1.SimulationService", "loanstress.v1.ComplianceService")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
WATCH_INTERVAL_SECONDS = 5
SIMULATION_POLL_SECONDS = 1


def _snake(name: str) -> str:
    """LoanId -> loan_id: contract field names to proto field names."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a servicer method, turning the application's errors into gRPC status codes and messages."""

    @functools.wraps(method)
    def translated(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ServiceError as error:
            context.abort(STATUS_OF_ERROR.get(type(error), grpc.StatusCode.INTERNAL), str(error))

    return translated


def _loan_details(view: dict[str, Any]) -> pb.LoanDetails:
    values = {}
    for field in FIELDS:
        value = view["loan"][field.name]
        if value is not None:
            values[_snake(field.name)] = int(value) if pa.types.is_integer(field.arrow_type) else value
    return pb.LoanDetails(**values, snapshot_id=view["snapshot_id"], version=view["version"], etag=view["etag"],
                          pending_amendment_ids=view["pending_amendments"])


def _scenario_result(row: dict[str, Any]) -> pb.ScenarioResult:
    message = pb.ScenarioResult(
        simulation_id=row["SimulationId"], scenario_id=row["ScenarioId"],
        scenario_description=row["ScenarioDescription"], interest_rate_scenario=row["InterestRateScenario"],
        start_date=row["StartDate"], end_date=row["EndDate"], overall_impact=row["OverallImpact"],
        airflow_run_id=row["AirflowRunId"], snapshot_id=row["SnapshotId"], loans=row["Loans"],
        exposure=row["Exposure"], loss_rate=row["LossRate"], var_999=row["VaR999"],
        expected_shortfall_99=row["ExpectedShortfall99"], min_cet1_ratio=row["MinCET1Ratio"],
        affected_loans=[pb.AffectedLoan(loan_id=loan["LoanId"], projected_default_risk=loan["ProjectedDefaultRisk"],
                                        projected_balance=loan["ProjectedBalance"])
                        for loan in row.get("AffectedLoans", [])])
    if "Segment" in row:
        message.segment.CopyFrom(pb.SegmentResult(**{_snake(k): v for k, v in row["Segment"].items()}))
    if "Loan" in row:
        loan = row["Loan"]
        message.loan.CopyFrom(pb.LoanResult(
            loan_id=loan["LoanId"], product_segment=loan["ProductSegment"],
            projected_default_risk=loan["ProjectedDefaultRisk"], projected_balance=loan["ProjectedBalance"],
            expected_loss=loan["ExpectedLoss"], quarterly_pd=loan["QuarterlyPD"],
            quarterly_balance=loan["QuarterlyBalance"]))
    return message


class LoanServicer(pb_grpc.LoanServiceServicer):
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    @_translated
    def GetLoanDetails(self, request: pb.LoanRequest, context: grpc.ServicerContext) -> pb.LoanDetails:
        return _loan_details(application.get_loan(self.adapters, request.loan_id))

    @_translated
    def UpdateLoan(self, request: pb.LoanUpdateRequest, context: grpc.ServicerContext) -> pb.UpdateResponse:
        changes: dict[str, str | None] = {}
        for name in application.UPDATABLE_FIELDS:
            wire = f"new_{_snake(name)}"
            if request.HasField(wire):
                changes[name] = str(getattr(request, wire))
        for wire in request.clear_fields:
            name = next((n for n in application.UPDATABLE_FIELDS if _snake(n) == wire), wire)
            changes[name] = None
        principal = current_principal.get()
        updated = application.update_loan(self.adapters, request.loan_id, request.etag, changes,
                                          actor=principal.subject if principal else "anonymous",
                                          reason=request.reason)
        amendment = updated["amendment"]
        return pb.UpdateResponse(success=True, amendment_id=amendment["amendment_id"], loan=_loan_details(updated),
                                 message=f"amendment {amendment['amendment_id']} recorded as version "
                                         f"{amendment['version']}; the next ingest applies it")


def _simulation_result(view: dict[str, Any]) -> pb.SimulationResult:
    return pb.SimulationResult(
        simulation_id=view["simulation_id"], status=view["status"], scenario_description=view["scenario_description"],
        interest_rate_scenario=view["interest_rate_scenario"], airflow_run_id=view["airflow_run_id"] or "",
        error=view["error"] or "", results=[_scenario_result(r) for r in view["results"]],
        next_page_token=view["next_page_token"], created_at=view["created_at"], updated_at=view["updated_at"])


class SimulationServicer(pb_grpc.SimulationServiceServicer):
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    @_translated
    def RunSimulation(self, request: pb.SimulationRequest, context: grpc.ServicerContext) -> pb.SimulationResult:
        principal = current_principal.get()
        started = application.run_simulation(
            self.adapters, request.scenario_description, request.interest_rate_scenario,
            requested_by=principal.subject if principal else "anonymous",
            scenario_ids=list(request.scenario_ids), horizon_quarters=request.horizon_quarters,
            n_paths=request.n_paths, seed=request.seed if request.HasField("seed") else None,
            as_of_date=request.as_of_date or None)
        return _simulation_result(application.get_simulation(self.adapters, started["simulation_id"]))

    @_translated
    def GetSimulation(self, request: pb.GetSimulationRequest, context: grpc.ServicerContext) -> pb.SimulationResult:
        return _simulation_result(application.get_simulation(
            self.adapters, request.simulation_id, request.page_size or application.DEFAULT_PAGE_SIZE,
            request.page_token))

    def WatchSimulation(self, request: pb.GetSimulationRequest, context: grpc.ServicerContext
                        ) -> Iterator[pb.SimulationResult]:
        """Polls the request's status (the launcher's, as GetSimulation does) and sends each change."""
        last = None
        while context.is_active():
            try:
                view = application.get_simulation(self.adapters, request.simulation_id,
                                                  request.page_size or application.DEFAULT_PAGE_SIZE,
                                                  request.page_token)
            except ServiceError as error:
                context.abort(STATUS_OF_ERROR.get(type(error), grpc.StatusCode.INTERNAL), str(error))
            if view["status"] != last:
                last = view["status"]
                yield _simulation_result(view)
            if last in application.TERMINAL:
                return
            time.sleep(SIMULATION_POLL_SECONDS)

    @_translated
    def ListRuns(self, request: pb.ListRunsRequest, context: grpc.ServicerContext) -> pb.ListRunsResponse:
        runs = application.list_runs(self.adapters, request.limit or 20)
        return pb.ListRunsResponse(runs=[pb.Run(airflow_run_id=r["airflow_run_id"], status=r["status"] or "",
                                                published_at=r["published_at"], simulations=r["simulations"])
                                         for r in runs])

    @_translated
    def GetResults(self, request: pb.ResultsRequest, context: grpc.ServicerContext) -> pb.ResultsResponse:
        found = application.get_results(self.adapters, run_id=request.run_id, scenario_id=request.scenario_id,
                                        segment=request.segment, loan_id=request.loan_id)
        return pb.ResultsResponse(run_id=found["run_id"], results=[_scenario_result(r) for r in found["results"]])

    @_translated
    def GetAllocation(self, request: pb.AllocationRequest, context: grpc.ServicerContext) -> pb.Allocation:
        return _allocation(application.get_allocation(self.adapters, request.run_id, request.strategy))


def _measures(measures: dict[str, Any] | None) -> pb.PortfolioMeasures | None:
    """Measures without their unset (None) values; None for a book the strategy did not produce."""
    return None if measures is None else pb.PortfolioMeasures(**{k: v for k, v in measures.items() if v is not None})


def _allocation(view: dict[str, Any]) -> pb.Allocation:
    limits = view["limits"]
    return pb.Allocation(
        run_id=view["run_id"], scenario_id=view["scenario_id"], baseline_scenario=view["baseline_scenario"] or "",
        strategy=view["strategy"], recommended_strategy=view["recommended_strategy"], status=view["status"],
        message=view["message"], conflicting=view["conflicting"],
        assets=[pb.AllocationAsset(**asset) for asset in view["assets"]],
        current=_measures(view["current"]), recommended=_measures(view["recommended"]),
        change=_measures(view["change"]), binding=[pb.BindingConstraint(**b) for b in view["binding"]],
        frontier=[pb.FrontierPoint(**point) for point in view["frontier"]],
        limits=pb.AllocationLimits(**{k: v for k, v in limits.items() if v is not None}))


class ComplianceServicer(pb_grpc.ComplianceServiceServicer):
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    @_translated
    def CheckCompliance(self, request: pb.ComplianceRequest, context: grpc.ServicerContext) -> pb.ComplianceStatus:
        status = application.check_compliance(self.adapters, request.metric_id)
        return pb.ComplianceStatus(
            metric_id=status["MetricId"], status=status["Status"], message=status["Message"],
            metric_name=status["MetricName"], compliance_threshold=status["ComplianceThreshold"],
            actual_value=status["ActualValue"], scenario=status["Scenario"] or "", run_id=status["RunId"],
            evaluated_at=status["EvaluatedAt"],
            records=[pb.ComplianceCheck(status=r["Status"], compliance_threshold=r["ComplianceThreshold"],
                                        actual_value=r["ActualValue"], scenario=r["Scenario"] or "",
                                        segment=r["Segment"] or "", feature=r["Feature"] or "", note=r["Note"])
                     for r in status["Records"]])


class HealthServicer(health_pb2_grpc.HealthServicer):
    """grpc.health.v1: SERVING for the server ("") and each loanstress service, NOT_FOUND for others."""

    def _status(self, service: str) -> int | None:
        return health_pb2.HealthCheckResponse.SERVING if service in ("", *SERVICE_NAMES) else None

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
              ) -> health_pb2.HealthCheckResponse:
        status = self._status(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
              ) -> Iterator[health_pb2.HealthCheckResponse]:
        status = self._status(request.service)
        yield health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVICE_UNKNOWN if status is None else status)
        while context.is_active():  # the status never changes while the server runs; keep the stream open
            time.sleep(WATCH_INTERVAL_SECONDS)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Authenticates every call but health checks and reflection, and checks the method's scope before it runs.

    The guarded handler of each method is built once and kept: the interceptor runs on every call,
    and a handler built per call costs as much as the cached read it guards.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = continuation(handler_call_details)
        if handler is None or method.startswith(UNAUTHENTICATED_PREFIXES):
            return handler
        guarded = self._guard(method, handler)
        self._guarded[method] = guarded
        return guarded

    def _authenticated(self, method: str, context: grpc.ServicerContext) -> Any:
        """Set the call's principal as :data:`current_principal` (returns the token that resets it), or abort."""
        authorization = next((value for key, value in context.invocation_metadata() if key == "authorization"),
                             None)
        scope = SCOPE_OF_METHOD.get(method)
        try:
            principal = self.verifier.verify(authorization)
            if scope is None:
                raise PermissionDenied(method)
            require_scope(principal, scope)
        except (Unauthenticated, PermissionDenied) as error:
            context.abort(STATUS_OF_ERROR[type(error)], str(error))
        return current_principal.set(principal)

    def _guard(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_stream is not None:
            def streamed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                token = self._authenticated(method, context)
                try:
                    yield from handler.unary_stream(request, context)
                finally:
                    current_principal.reset(token)

            return grpc.unary_stream_rpc_method_handler(streamed, request_deserializer=handler.request_deserializer,
                                                        response_serializer=handler.response_serializer)

        def answered(request: Any, context: grpc.ServicerContext) -> Any:
            token = self._authenticated(method, context)
            try:
                return handler.unary_unary(request, context)
            finally:
                current_principal.reset(token)

        return grpc.unary_unary_rpc_method_handler(answered, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


def build_server(adapters: Adapters, verifier: TokenVerifier, address: str, *, tls_cert_pem: bytes | None = None,
                 tls_key_pem: bytes | None = None, workers: int = 8) -> tuple[grpc.Server, int]:
    """A gRPC server bound to ``address`` (TLS when a certificate and key are given), not yet started; and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         interceptors=[BearerTokenInterceptor(verifier)],
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                  ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    pb_grpc.add_LoanServiceServicer_to_server(LoanServicer(adapters), server)
    pb_grpc.add_SimulationServiceServicer_to_server(SimulationServicer(adapters), server)
    pb_grpc.add_ComplianceServiceServicer_to_server(ComplianceServicer(adapters), server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                                         reflection.SERVICE_NAME), server)
    if tls_cert_pem and tls_key_pem:
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(tls_key_pem, tls_cert_pem)]))
    else:
        port = server.add_insecure_port(address)
    return server, port
