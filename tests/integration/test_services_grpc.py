"""The gRPC transport on loopback: every operation, status codes, bearer tokens from a real OAuth 2.0
authorization server, health checks, TLS, and generated code in step with the .proto files."""

from __future__ import annotations

import datetime as dt
import filecmp
import ipaddress
import itertools
import time
from pathlib import Path

import grpc
import pytest
from conftest import client_credentials_token
from services_support import RUN_ID, ingest_tape, publish_known_results, record

from pipelines.compliance.rules import Status
from pipelines.services.grpc_gen.grpc.health.v1 import health_pb2, health_pb2_grpc
from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2 as pb
from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2_grpc as pb_grpc

GIVE_UP_SECONDS = 600  # a guard against a hung simulation process, not a measure of speed


@pytest.fixture
def grpc_channel(adapters, token_verifier):
    from pipelines.services.grpc_server import build_server

    server, port = build_server(adapters, token_verifier, "127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(grace=None)


@pytest.fixture
def bearer(oauth_issuer):
    token = client_credentials_token(oauth_issuer, "risk-engine")
    return [("authorization", f"Bearer {token}")]


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args, **kwargs)
    return raised.value.code(), raised.value.details()


def test_loans_over_grpc(grpc_channel, bearer, adapters, valid_tape_rows, tmp_path, write_csv):
    loans = pb_grpc.LoanServiceStub(grpc_channel)
    assert code_of(loans.GetLoanDetails, pb.LoanRequest(loan_id="M-0001"), metadata=bearer)[0] == \
        grpc.StatusCode.FAILED_PRECONDITION
    manifest = ingest_tape(valid_tape_rows, tmp_path, write_csv, "first")
    loan = loans.GetLoanDetails(pb.LoanRequest(loan_id="R-0004"), metadata=bearer)
    assert (loan.loan_id, loan.interest_rate, loan.current_balance, loan.credit_score) == (
        "R-0004", "0.07900000", "7612345.67", 650)
    assert loan.rate_margin == "0.03000000" and loan.HasField("collateral_value")
    assert loan.etag == f"{manifest['snapshot_id']}.0"
    fixed = loans.GetLoanDetails(pb.LoanRequest(loan_id="K-0003"), metadata=bearer)
    assert not fixed.HasField("rate_margin") and not fixed.HasField("collateral_value")

    updated = loans.UpdateLoan(pb.LoanUpdateRequest(loan_id="R-0004", etag=loan.etag, new_interest_rate="0.0815",
                                                    new_days_past_due=60, reason="watch list"), metadata=bearer)
    assert updated.success and updated.loan.interest_rate == "0.0815" and updated.loan.days_past_due == 60
    assert updated.loan.version == 1 and updated.loan.pending_amendment_ids == [updated.amendment_id]
    (amendment,) = adapters.service_store.amendments_of_loan("R-0004")
    assert amendment["actor"] == "risk-engine" and amendment["reason"] == "watch list"

    for request, code, message in [
        (pb.LoanUpdateRequest(loan_id="R-0004", etag=loan.etag, new_interest_rate="0.09"),
         grpc.StatusCode.FAILED_PRECONDITION, "changed since etag"),
        (pb.LoanUpdateRequest(loan_id="R-0004", etag=updated.loan.etag, new_interest_rate="NaN"),
         grpc.StatusCode.INVALID_ARGUMENT, "not a decimal"),
        (pb.LoanUpdateRequest(loan_id="R-0004", etag=updated.loan.etag, new_interest_rate="Infinity"),
         grpc.StatusCode.INVALID_ARGUMENT, "not a decimal"),
        (pb.LoanUpdateRequest(loan_id="R-0004", etag=updated.loan.etag, new_interest_rate=""),
         grpc.StatusCode.INVALID_ARGUMENT, "not a decimal"),
        (pb.LoanUpdateRequest(loan_id="R-0004", etag=updated.loan.etag, clear_fields=["rate_margin"]),
         grpc.StatusCode.INVALID_ARGUMENT, "variable_rate_terms"),
        (pb.LoanUpdateRequest(loan_id="NOPE", etag="x", new_interest_rate="0.05"),
         grpc.StatusCode.NOT_FOUND, "NOPE"),
    ]:
        assert code_of(loans.UpdateLoan, request, metadata=bearer)[0] == code
        assert message in code_of(loans.UpdateLoan, request, metadata=bearer)[1]


def test_oversize_request_is_refused(grpc_channel, bearer):
    loans = pb_grpc.LoanServiceStub(grpc_channel)
    code, _ = code_of(loans.GetLoanDetails, pb.LoanRequest(loan_id="x" * (5 * 1024 * 1024)), metadata=bearer)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_of(loans.GetLoanDetails, pb.LoanRequest(loan_id="x" * 65), metadata=bearer)[0] == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_results_runs_and_compliance_over_grpc(grpc_channel, bearer, adapters):
    simulations = pb_grpc.SimulationServiceStub(grpc_channel)
    compliance = pb_grpc.ComplianceServiceStub(grpc_channel)
    assert code_of(simulations.GetResults, pb.ResultsRequest(), metadata=bearer)[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(compliance.CheckCompliance, pb.ComplianceRequest(metric_id="CET1_MIN"), metadata=bearer)[0] == \
        grpc.StatusCode.NOT_FOUND
    result = publish_known_results(adapters)
    adapters.results_store.save_compliance(RUN_ID, "loan_stress_test", [
        record(RUN_ID, Status.NON_COMPLIANT, 0.05, "2026_severely_adverse", 1)])
    (run,) = simulations.ListRuns(pb.ListRunsRequest(), metadata=bearer).runs
    assert run.airflow_run_id == RUN_ID and dict(run.simulations) == {"2026_severely_adverse": result["SimulationId"]}
    found = simulations.GetResults(pb.ResultsRequest(segment="auto", loan_id="C-3"), metadata=bearer)
    (scenario,) = found.results
    assert found.run_id == RUN_ID and scenario.overall_impact == "135.00" and scenario.var_999 == "900.50"
    assert (scenario.segment.segment, scenario.segment.exposure, scenario.segment.loss_rate) == (
        "auto", "3000.50", "0.02500000")
    assert (scenario.loan.projected_balance, list(scenario.loan.quarterly_pd), list(scenario.loan.quarterly_balance)) \
        == ("300.25", ["0.05000000", "0.06000000"], ["310.00", "300.25"])
    assert code_of(simulations.GetResults, pb.ResultsRequest(segment="boats"), metadata=bearer)[0] == \
        grpc.StatusCode.NOT_FOUND
    status = compliance.CheckCompliance(pb.ComplianceRequest(metric_id="CET1_MIN"), metadata=bearer)
    assert (status.status, status.compliance_threshold, status.actual_value, status.scenario, status.run_id) == (
        "Non-Compliant", "0.07000000", "0.05000000", "2026_severely_adverse", RUN_ID)
    assert "Non-Compliant in 1 of 1 checks" in status.message


def test_run_and_get_simulation_over_grpc(grpc_channel, bearer, adapters):
    simulations = pb_grpc.SimulationServiceStub(grpc_channel)
    for request in (pb.SimulationRequest(scenario_description="up", interest_rate_scenario="NaN"),
                    pb.SimulationRequest(scenario_description="up", interest_rate_scenario="0.03015"),
                    pb.SimulationRequest(scenario_description="up", interest_rate_scenario="0.03",
                                         scenario_ids=["no_such"])):
        assert code_of(simulations.RunSimulation, request, metadata=bearer)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(simulations.GetSimulation, pb.GetSimulationRequest(simulation_id="svc__none"),
                   metadata=bearer)[0] == grpc.StatusCode.NOT_FOUND
    # No loan tape in this data home: the run starts, then fails in its ingest, and says so.
    started = simulations.RunSimulation(pb.SimulationRequest(scenario_description="Rates +300 bp",
                                                             interest_rate_scenario="0.03"), metadata=bearer)
    assert started.status == "queued" and started.simulation_id.startswith("svc__")
    assert started.scenario_description == "Rates +300 bp" and started.interest_rate_scenario == "0.03"
    # Horizon, paths and seed left unset travel unset, so the run's plan takes the STRESS_* settings.
    conf = adapters.service_store.simulation_request(started.simulation_id)["conf"]
    assert (conf["horizon_quarters"], conf["n_paths"], conf["seed"]) == (0, 0, None)
    deadline = time.monotonic() + GIVE_UP_SECONDS
    view = started
    while view.status not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(1)
        view = simulations.GetSimulation(pb.GetSimulationRequest(simulation_id=started.simulation_id),
                                         metadata=bearer)
    assert view.status == "failed" and "loan_stress_test" in view.error
    # A seed of 0 set on the wire is a seed, not "unset" (proto3 presence); started once the first run ended,
    # as two runs of one data home would migrate its Airflow database at once.
    chosen = simulations.RunSimulation(pb.SimulationRequest(scenario_description="seed 0", interest_rate_scenario="0",
                                                            horizon_quarters=4, n_paths=50, seed=0), metadata=bearer)
    conf = adapters.service_store.simulation_request(chosen.simulation_id)["conf"]
    assert (conf["horizon_quarters"], conf["n_paths"], conf["seed"]) == (4, 50, 0)
    # The progress stream sends each status once, from the first, and ends by itself with the outcome.
    watched = [view.status for view in simulations.WatchSimulation(
        pb.GetSimulationRequest(simulation_id=chosen.simulation_id), metadata=bearer, timeout=GIVE_UP_SECONDS)]
    assert watched[0] in ("queued", "running") and watched[-1] == "failed"
    assert all(a != b for a, b in itertools.pairwise(watched)) and set(watched) <= {"queued", "running", "failed"}
    assert [view.status for view in simulations.WatchSimulation(
        pb.GetSimulationRequest(simulation_id=chosen.simulation_id), metadata=bearer)] == ["failed"]
    assert code_of(lambda: list(simulations.WatchSimulation(pb.GetSimulationRequest(simulation_id="svc__none"),
                                                            metadata=bearer)))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: list(simulations.WatchSimulation(
        pb.GetSimulationRequest(simulation_id=chosen.simulation_id))))[0] == grpc.StatusCode.UNAUTHENTICATED


def test_allocation_over_grpc(grpc_channel, bearer, adapters, oauth_issuer):
    from services_support import publish_known_allocation

    simulations = pb_grpc.SimulationServiceStub(grpc_channel)
    assert code_of(simulations.GetAllocation, pb.AllocationRequest(), metadata=bearer)[0] == grpc.StatusCode.NOT_FOUND
    publish_known_results(adapters)
    code, details = code_of(simulations.GetAllocation, pb.AllocationRequest(run_id=RUN_ID), metadata=bearer)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "optimise step" in details
    publish_known_allocation(adapters)
    allocation = simulations.GetAllocation(pb.AllocationRequest(), metadata=bearer)
    assert (allocation.run_id, allocation.strategy, allocation.status) == (RUN_ID, "max_return", "optimal")
    assert [(a.name, a.current, a.recommended) for a in allocation.assets] == [("auto", "100.00", "130.00"),
                                                                               ("heloc", "100.00", "120.00")]
    assert (allocation.current.expected_return, allocation.recommended.expected_return,
            allocation.change.expected_return) == ("-1.50", "-1.80", "-0.30")
    assert not allocation.current.HasField("min_cet1_ratio")  # no capital path in this run: unset, not "NaN"
    assert {b.name: b.shadow_price for b in allocation.binding}["growth bound auto"] == "0.015000000000"
    assert allocation.limits.budget == "250.00" and not allocation.limits.HasField("cvar_limit")
    assert len(allocation.frontier) == 3 and allocation.frontier[0].cvar == "25.00"
    assert code_of(simulations.GetAllocation, pb.AllocationRequest(strategy="max_luck"), metadata=bearer)[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    viewer = [("authorization", f"Bearer {oauth_issuer.mint('viewer', {'loans:read'})}")]
    assert code_of(simulations.GetAllocation, pb.AllocationRequest(), metadata=viewer)[0] == \
        grpc.StatusCode.PERMISSION_DENIED


def test_tokens_and_scopes(grpc_channel, oauth_issuer):
    loans = pb_grpc.LoanServiceStub(grpc_channel)
    compliance = pb_grpc.ComplianceServiceStub(grpc_channel)
    request = pb.LoanRequest(loan_id="M-0001")
    good = oauth_issuer.mint("risk-engine", {"loans:read"})
    header, payload, signature = good.split(".")
    tampered = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    for metadata in ([], [("authorization", "Basic abc")], [("authorization", f"Bearer {tampered}")],
                     [("authorization", "Bearer " + oauth_issuer.mint("x", {"loans:read"},
                                                                       exp=int(time.time()) - 120))],
                     [("authorization", "Bearer " + oauth_issuer.mint("x", {"loans:read"}, aud="another-api"))],
                     [("authorization", "Bearer " + oauth_issuer.mint("x", {"loans:read"}, iss="http://evil"))],
                     [("authorization", "Bearer " + oauth_issuer.mint("x", {"loans:read"}, kid="unknown"))]):
        assert code_of(loans.GetLoanDetails, request, metadata=metadata)[0] == grpc.StatusCode.UNAUTHENTICATED
    viewer = [("authorization", f"Bearer {client_credentials_token(oauth_issuer, 'loan-viewer')}")]
    # Authenticated and allowed: the call reaches the service (no snapshot in this data home yet).
    assert code_of(loans.GetLoanDetails, request, metadata=viewer)[0] == grpc.StatusCode.FAILED_PRECONDITION
    code, details = code_of(loans.UpdateLoan, pb.LoanUpdateRequest(loan_id="M-0001"), metadata=viewer)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "insufficient_scope" in details and "loans:write" in details
    assert code_of(compliance.CheckCompliance, pb.ComplianceRequest(metric_id="x"), metadata=viewer)[0] == \
        grpc.StatusCode.PERMISSION_DENIED


def test_health_checks_need_no_token(grpc_channel):
    health = health_pb2_grpc.HealthStub(grpc_channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest()).status == serving
    assert health.Check(health_pb2.HealthCheckRequest(service="loanstress.v1.LoanService")).status == serving
    assert code_of(health.Check, health_pb2.HealthCheckRequest(service="nope"))[0] == grpc.StatusCode.NOT_FOUND
    first = next(iter(health.Watch(health_pb2.HealthCheckRequest(service="nope"))))
    assert first.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def test_reflection_lists_the_services_without_a_token(grpc_channel):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    database = ProtoReflectionDescriptorDatabase(grpc_channel)
    assert set(database.get_services()) == {"loanstress.v1.LoanService", "loanstress.v1.SimulationService",
                                            "loanstress.v1.ComplianceService", "grpc.health.v1.Health",
                                            "grpc.reflection.v1alpha.ServerReflection"}
    # A reflection client resolves the methods and messages from the server alone, as grpcurl does.
    pool = DescriptorPool(database)
    compliance = pool.FindServiceByName("loanstress.v1.ComplianceService")
    assert [m.name for m in compliance.methods] == ["CheckCompliance"]
    assert compliance.methods_by_name["CheckCompliance"].output_type.fields_by_name["actual_value"].type == \
        compliance.methods_by_name["CheckCompliance"].output_type.fields_by_name["actual_value"].TYPE_STRING
    assert "GetLoanDetails" in pool.FindServiceByName("loanstress.v1.LoanService").methods_by_name


def self_signed_certificate() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for localhost and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_tls_from_configured_certificates(adapters, token_verifier, oauth_issuer):
    from pipelines.services.grpc_server import build_server

    certificate, key = self_signed_certificate()
    server, port = build_server(adapters, token_verifier, "127.0.0.1:0", tls_cert_pem=certificate, tls_key_pem=key)
    server.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=certificate)
        with grpc.secure_channel(f"localhost:{port}", credentials) as tls:
            assert health_pb2_grpc.HealthStub(tls).Check(health_pb2.HealthCheckRequest()).status == \
                health_pb2.HealthCheckResponse.SERVING
            token = [("authorization", f"Bearer {client_credentials_token(oauth_issuer, 'risk-engine')}")]
            assert code_of(pb_grpc.LoanServiceStub(tls).GetLoanDetails, pb.LoanRequest(loan_id="M-0001"),
                           metadata=token)[0] == grpc.StatusCode.FAILED_PRECONDITION
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plaintext:
            assert code_of(health_pb2_grpc.HealthStub(plaintext).Check, health_pb2.HealthCheckRequest(),
                           timeout=10)[0] == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=None)


def test_generated_code_is_up_to_date(tmp_path: Path):
    from pipelines.services.grpc_codegen import PACKAGE, generate
    from pipelines.settings import REPO_ROOT

    written = generate(tmp_path)
    committed = REPO_ROOT / PACKAGE
    for path in written:
        relative = path.relative_to(tmp_path / PACKAGE)
        assert filecmp.cmp(path, committed / relative, shallow=False), f"{relative} is stale: run `make proto`"
    assert {p.relative_to(tmp_path / PACKAGE) for p in written} == {
        p.relative_to(committed) for p in committed.rglob("*") if p.suffix in (".py", ".pyi")
        and p.name != "__init__.py"}
