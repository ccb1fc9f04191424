"""Bounded load on loopback: N concurrent clients send a fixed count of cached reads (CheckCompliance)
to the REST API and to the gRPC server, each served by its own process as ``make api`` / ``make grpc``
run them, with bearer tokens from the local issuer. Figures: requests/s, p50 and p99 latency, errors
(goal on the project machine: >= 1,000 cached reads/s over REST, >= 2,000/s over gRPC, p99 < 50 ms,
errors 0), and the CPU each request cost the client (this process) and the server (its process).

One load client for both transports, so their figures compare: CLIENTS coroutines on one asyncio
loop, over one keep-alive aiohttp session (REST) or one grpc.aio channel (gRPC). A thread per client
with httpx's sync client spent about a millisecond of CPU per request in the client itself, more than
the server did, so the old figures measured the client; the CPU columns show which side is the limit.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import benchmark

CLIENTS = 8
REST_REQUESTS = 6000
GRPC_REQUESTS = 10000
WARM_UP = 400
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


def _process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (``/proc/<pid>/stat``, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(call: Callable[[], Awaitable[None]], total: int, server_pid: int) -> dict[str, float]:
    """``total`` calls from CLIENTS coroutines: throughput, p50/p99 in ms, failed calls, CPU per call."""
    latencies: list[float] = []
    errors = 0

    async def client(count: int) -> None:
        nonlocal errors
        for _ in range(count):
            started = time.perf_counter()
            try:
                await call()
            except Exception:  # any failed call counts as an error of the load test
                errors += 1
            latencies.append(time.perf_counter() - started)

    server_cpu, client_cpu, started = _process_cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(total // CLIENTS) for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    client_cpu, server_cpu = time.process_time() - client_cpu, _process_cpu_seconds(server_pid) - server_cpu
    latencies.sort()
    count = len(latencies)
    return {"requests": count, "per_s": round(count / elapsed),
            "p50_ms": round(latencies[count // 2] * 1000, 2), "p99_ms": round(latencies[int(count * 0.99)] * 1000, 2),
            "errors": errors, "client_cpu_us": round(client_cpu / count * 1e6),
            "server_cpu_us": round(server_cpu / count * 1e6)}


async def _wait_for(probe: Callable[[], Awaitable[None]], process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            await probe()
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start") from None
            await asyncio.sleep(0.2)


async def _rest_and_grpc_load(rest_port: int, grpc_port: int, token: str,
                              servers: list[subprocess.Popen]) -> dict[str, float]:
    import aiohttp
    import grpc

    from pipelines.services.grpc_gen.grpc.health.v1 import health_pb2, health_pb2_grpc
    from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2 as pb
    from pipelines.services.grpc_gen.loanstress.v1 import loanstress_pb2_grpc as pb_grpc

    figures: dict[str, float] = {}
    url = f"http://127.0.0.1:{rest_port}/api/v1/compliance/{METRIC_ID}"
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {token}"}) as session:
        async def rest_call() -> None:
            async with session.get(url) as response:
                await response.read()
                response.raise_for_status()

        await _wait_for(rest_call, servers[0])
        await _load(rest_call, WARM_UP, servers[0].pid)
        figures.update({f"rest_{k}": v for k, v in (await _load(rest_call, REST_REQUESTS, servers[0].pid)).items()})

    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.ComplianceServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        request = pb.ComplianceRequest(metric_id=METRIC_ID)

        async def grpc_call() -> None:
            await stub.CheckCompliance(request, metadata=metadata, timeout=10)

        async def health_check() -> None:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)

        await _wait_for(health_check, servers[1])
        await _load(grpc_call, WARM_UP, servers[1].pid)
        figures.update({f"grpc_{k}": v for k, v in (await _load(grpc_call, GRPC_REQUESTS, servers[1].pid)).items()})
    return figures


@benchmark
def api_load() -> dict[str, float]:
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
            figures.update(asyncio.run(_rest_and_grpc_load(rest_port, grpc_port, token, servers)))
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    return figures
