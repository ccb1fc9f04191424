"""Bounded load on loopback: N concurrent clients send a fixed count of cached reads (CheckCompliance)
to the REST API and to the gRPC server, each served by its own process as ``make api`` / ``make grpc``
run them, with bearer tokens from the local issuer. Figures: requests/s, p50 and p99 latency, errors
(goal on the project machine: >= 1,000 cached reads/s over REST, >= 2,000/s over gRPC, p99 < 50 ms,
errors 0)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import benchmark

CLIENTS = 8
REST_REQUESTS = 4000
GRPC_REQUESTS = 8000
WARM_UP = 200
METRIC_ID = "CET1_MIN_RATIO"
RUN_ID = "bench__api_load"
START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _publish_compliance(data_home: Path) -> None:
    """One stored compliance record: what the cached reads return."""
    from pipelines.compliance.rules import ComplianceRecord, Direction, Scope, Severity, Status
    from pipelines.composition import build_adapters
    from pipelines.settings import StressSettings

    adapters = build_adapters(StressSettings(data_home=data_home))
    adapters.results_store.save_compliance(RUN_ID, "loan_stress_test", [ComplianceRecord(
        metric_id=METRIC_ID, metric_name="Minimum CET1 ratio", threshold=0.07, actual=0.09,
        status=Status.COMPLIANT, run_id=RUN_ID, dag_id="loan_stress_test", metric="min_cet1_ratio",
        scope=Scope.SCENARIO, direction=Direction.MIN, severity=Severity.CRITICAL, scenario="2026_baseline",
        evaluated_at=datetime.now(UTC))])


def _load(call: Callable[[], None], total: int) -> dict[str, float]:
    """``total`` calls from CLIENTS threads; throughput, p50/p99 in ms and the count of failed calls."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_client = total // CLIENTS

    def client() -> None:
        mine = []
        for _ in range(per_client):
            started = time.perf_counter()
            try:
                call()
            except Exception:  # any failed call counts as an error of the load test
                with lock:
                    errors[0] += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "per_s": round(len(latencies) / elapsed),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2), "errors": errors[0]}


def _wait_for(probe: Callable[[], None], process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            probe()
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)


@benchmark
def api_load() -> dict[str, float]:
    import grpc
    import httpx

    from pipelines.services.grpc_gen.grpc.health.v1 import health_pb2, health_pb2_grpc
    from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2 as pb
    from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2_grpc as pb_grpc
    from pipelines.services.local_issuer import ALL_SCOPES, AUDIENCE, OAuthIssuer

    figures: dict[str, float] = {"clients": CLIENTS}
    with tempfile.TemporaryDirectory(prefix="api-load-") as home, OAuthIssuer({}) as issuer:
        _publish_compliance(Path(home))
        rest_port, grpc_port = _free_port(), _free_port()
        environment = {**{k: v for k, v in os.environ.items() if not k.startswith("STRESS_")},
                       "STRESS_DATA_HOME": home, "STRESS_AUTH_ISSUER": issuer.issuer,
                       "STRESS_AUTH_AUDIENCE": AUDIENCE, "STRESS_AUTH_JWKS_URL": issuer.jwks_url,
                       "STRESS_API_PORT": str(rest_port), "STRESS_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}"}
        servers = [subprocess.Popen([sys.executable, "-m", "pipelines.cli", command], env=environment,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for command in ("serve-api", "serve-grpc")]
        try:
            token = issuer.mint("api-load", ALL_SCOPES)
            headers = {"Authorization": f"Bearer {token}"}
            local = threading.local()

            def rest_call() -> None:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=f"http://127.0.0.1:{rest_port}/api/v1", headers=headers)
                local.client.get(f"/compliance/{METRIC_ID}").raise_for_status()

            _wait_for(rest_call, servers[0])
            _load(rest_call, WARM_UP)
            figures.update({f"rest_{k}": v for k, v in _load(rest_call, REST_REQUESTS).items()})

            channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
            stub = pb_grpc.ComplianceServiceStub(channel)
            metadata = [("authorization", f"Bearer {token}")]
            _wait_for(lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5),
                      servers[1])

            def grpc_call() -> None:
                stub.CheckCompliance(pb.ComplianceRequest(metric_id=METRIC_ID), metadata=metadata, timeout=10)

            _load(grpc_call, WARM_UP)
            figures.update({f"grpc_{k}": v for k, v in _load(grpc_call, GRPC_REQUESTS).items()})
            channel.close()
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    return figures
