"""Health probes of the project's servers, as the compose file's health checks and Kubernetes exec probes run them.

``python -m pipelines.cli probe TARGET`` exits 0 when the server answers healthy, 1 otherwise, with one
line saying what was seen. ``TARGET`` is a URL: ``http(s)://host:port/path`` (healthy: a 2xx or 3xx
answer) or ``grpc(s)://host:port`` (healthy: ``grpc.health.v1.Health/Check`` says SERVING). Over TLS
the server's certificate is verified against ``ca_path`` (``STRESS_TLS_CA_PATH``), so a probe also
fails when a server serves a certificate its clients would refuse. Kubernetes' own gRPC probes cannot
speak TLS, which is why the manifests run this instead.
"""

from __future__ import annotations

from urllib.parse import urlparse


class ProbeFailed(RuntimeError):
    """The server did not answer healthy; the message says what was seen."""


def probe(target: str, ca_path: str = "", timeout_seconds: float = 5.0) -> str:
    """Probe ``target`` once; returns what was seen, or raises :class:`ProbeFailed`."""
    parsed = urlparse(target)
    if parsed.scheme in ("http", "https"):
        return _probe_http(target, ca_path, timeout_seconds)
    if parsed.scheme in ("grpc", "grpcs") and parsed.hostname and parsed.port:
        return _probe_grpc(parsed.hostname, parsed.port, parsed.scheme == "grpcs", ca_path, timeout_seconds)
    raise ValueError(f"probe target {target!r}: use http(s)://host:port/path or grpc(s)://host:port")


def _probe_http(url: str, ca_path: str, timeout_seconds: float) -> str:
    import httpx

    from pipelines.services.tls import client_verification

    try:
        response = httpx.get(url, verify=client_verification(ca_path), timeout=timeout_seconds)
    except httpx.HTTPError as error:
        raise ProbeFailed(f"{url}: {type(error).__name__}: {error}") from error
    if response.status_code >= 400:
        raise ProbeFailed(f"{url}: HTTP {response.status_code}")
    return f"{url}: HTTP {response.status_code}"


def _probe_grpc(host: str, port: int, tls: bool, ca_path: str, timeout_seconds: float) -> str:
    from pathlib import Path

    import grpc

    from pipelines.services.grpc_gen.grpc.health.v1 import health_pb2, health_pb2_grpc

    address = f"{host}:{port}"
    if tls:
        roots = Path(ca_path).read_bytes() if ca_path else None
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=roots))
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                               timeout=timeout_seconds).status
        except grpc.RpcError as error:
            raise ProbeFailed(f"grpc{'s' if tls else ''}://{address}: {error.code().name}: {error.details()}") \
                from error
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    if status != health_pb2.HealthCheckResponse.SERVING:
        raise ProbeFailed(f"grpc{'s' if tls else ''}://{address}: {name}")
    return f"grpc{'s' if tls else ''}://{address}: {name}"
