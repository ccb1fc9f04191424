"""Encryption at rest and in transit: SSE on every S3 write and the refusal of an unencrypted bucket (moto),
TLS parameters of the PostgreSQL stores and the refusal of a server without TLS (the local PostgreSQL),
and the REST API over HTTPS from configured certificates (a CA made in the test)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pipelines.composition import ConfigurationError, build_adapters

BUCKET = "loanstress-encrypted"
REGION = "us-east-1"
GIVE_UP_SECONDS = 30


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's S3 (and KMS) with one bucket that has no default encryption; fake credentials."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def _default_encryption(s3, algorithm: str, key_id: str | None = None) -> None:
    default = {"SSEAlgorithm": algorithm, **({"KMSMasterKeyID": key_id} if key_id else {})}
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": default}]})


def test_every_write_asks_for_sse_s3_by_default(s3, settings) -> None:
    import pyarrow as pa

    store = build_adapters(settings.model_copy(update={"object_store_uri": f"s3://{BUCKET}/stress"})).object_store
    store.put_bytes("runs/r1/steps/ingest.json", b"{}")
    store.put_parquet("snapshots/s1/loans.parquet", pa.table({"LoanId": ["M-0001"]}))
    for key in ("stress/runs/r1/steps/ingest.json", "stress/snapshots/s1/loans.parquet"):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in head, key
    assert store.get_bytes("runs/r1/steps/ingest.json") == b"{}"


def test_a_configured_kms_key_encrypts_every_write_with_sse_kms(s3, settings) -> None:
    import boto3

    key_arn = boto3.client("kms", region_name=REGION).create_key(Description="loanstress")["KeyMetadata"]["Arn"]
    configured = settings.model_copy(update={"object_store_uri": f"s3://{BUCKET}/stress",
                                             "object_store_kms_key_id": key_arn})
    store = build_adapters(configured).object_store
    store.put_bytes("runs/r1/report.html", b"<html></html>")
    head = s3.head_object(Bucket=BUCKET, Key="stress/runs/r1/report.html")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn
    assert store.get_bytes("runs/r1/report.html") == b"<html></html>"


def test_emr_serverless_logs_are_encrypted_with_the_arn_of_a_configured_alias(s3, settings) -> None:
    """S3 takes an alias as ``SSEKMSKeyId``; EMR Serverless's ``encryptionKeyArn`` takes only a key ARN."""
    import boto3

    kms = boto3.client("kms", region_name=REGION)
    key_arn = kms.create_key(Description="loanstress")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/loanstress-data", TargetKeyId=key_arn)
    emr = {"object_store_uri": f"s3://{BUCKET}/stress", "simulation_runner": "emr_serverless",
           "emr_execution_role_arn": "arn:aws:iam::123456789012:role/emr", "emr_code_uri": f"s3://{BUCKET}/code"}
    job = build_adapters(settings.model_copy(update={**emr, "object_store_kms_key_id": "alias/loanstress-data"})
                         ).emr_serverless_job
    logs = job.configuration_overrides()["monitoringConfiguration"]["s3MonitoringConfiguration"]
    assert logs["encryptionKeyArn"] == key_arn
    arguments = job.job_driver(f"s3://{BUCKET}/stress", "runs/r/job.json")["sparkSubmit"]["entryPointArguments"]
    assert arguments[-2:] == ["--kms-key-id", "alias/loanstress-data"]
    missing = build_adapters(settings.model_copy(update={**emr, "object_store_kms_key_id": "alias/not-there"}))
    with pytest.raises(ConfigurationError, match=r"STRESS_OBJECT_STORE_KMS_KEY_ID=alias/not-there.*kms:DescribeKey"):
        _ = missing.emr_serverless_job


def test_a_bucket_without_default_encryption_is_refused_when_required(s3, settings) -> None:
    from pipelines.adapters.object_store import BucketEncryptionError

    required = settings.model_copy(update={"object_store_uri": f"s3://{BUCKET}/stress",
                                           "object_store_require_bucket_encryption": True})
    with pytest.raises(BucketEncryptionError, match=f"bucket '{BUCKET}' .* has no default encryption"):
        _ = build_adapters(required).object_store
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    _default_encryption(s3, "AES256")
    assert build_adapters(required).object_store.check_bucket_encryption() == "AES256"


def test_with_a_kms_key_an_sse_s3_bucket_default_is_refused_and_aws_kms_accepted(s3, settings) -> None:
    from pipelines.adapters.object_store import BucketEncryptionError

    required = settings.model_copy(update={"object_store_uri": f"s3://{BUCKET}/stress",
                                           "object_store_require_bucket_encryption": True,
                                           "object_store_kms_key_id": "alias/loanstress"})
    _default_encryption(s3, "AES256")
    with pytest.raises(BucketEncryptionError, match=r"encrypts by default with \['AES256'\], not aws:kms"):
        _ = build_adapters(required).object_store
    _default_encryption(s3, "aws:kms", "alias/loanstress")
    assert build_adapters(required).object_store.check_bucket_encryption() == "aws:kms"


def test_requiring_bucket_encryption_of_a_local_folder_is_a_configuration_error(settings) -> None:
    with pytest.raises(ConfigurationError, match="applies to an s3:// object store"):
        build_adapters(settings.model_copy(update={"object_store_require_bucket_encryption": True}))


# PostgreSQL over TLS.

def test_tls_settings_reach_the_url_every_store_connects_with(settings, postgres_database, certificate_authority):
    from pipelines.adapters.sql import open_engine

    configured = settings.model_copy(update={"loan_store_url": postgres_database, "loan_store_sslmode": "verify-full",
                                             "loan_store_sslrootcert": str(certificate_authority.ca_path)})
    adapters = build_adapters(configured)
    url = sa.engine.make_url(adapters.loan_store_url)
    assert url.query == {"sslmode": "verify-full", "sslrootcert": str(certificate_authority.ca_path)}
    assert url.database == sa.engine.make_url(postgres_database).database
    engine = open_engine(adapters.loan_store_url)
    _, connect_kwargs = engine.dialect.create_connect_args(engine.url)
    assert connect_kwargs["sslmode"] == "verify-full"
    assert connect_kwargs["sslrootcert"] == str(certificate_authority.ca_path)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"loan_store_sslmode": "verify-full"}, "verify-full needs STRESS_LOAN_STORE_SSLROOTCERT"),
    ({"loan_store_sslmode": "verify-ca"}, "verify-ca needs STRESS_LOAN_STORE_SSLROOTCERT"),
    ({"loan_store_sslrootcert": "/nonexistent/rds-ca.pem"}, "is not a readable file"),
    ({"loan_store_sslmode": "require", "loan_store_url": "postgresql+psycopg://u@db/stress?sslmode=disable"},
     "already sets sslmode='disable'"),
    ({"loan_store_sslmode": "require", "loan_store_url": ""}, "apply to a PostgreSQL loan store, not sqlite"),
])
def test_tls_settings_that_cannot_hold_fail_at_start(settings, overrides, message) -> None:
    url = {"loan_store_url": "postgresql+psycopg://u@db/stress"}
    with pytest.raises(ConfigurationError, match=message):
        build_adapters(settings.model_copy(update={**url, **overrides}))


def _server_ssl(postgres_url: str) -> str:
    import psycopg

    with psycopg.connect(postgres_url) as connection:
        return connection.execute("SHOW ssl").fetchone()[0]


def test_sslmode_require_against_the_local_server(settings, postgres_url, postgres_database) -> None:
    """The local server has ssl=off: require must refuse to connect in clear, naming the setting and with
    libpq's reason. Were TLS on, the same settings must connect encrypted (pg_stat_ssl says so); verified
    TLS against a server that has it is tested on a private cluster (test_postgres_tls.py)."""
    from pipelines.adapters.sql import TlsRefused

    adapters = build_adapters(settings.model_copy(update={"loan_store_url": postgres_database,
                                                          "loan_store_sslmode": "require"}))
    if _server_ssl(postgres_url) == "off":
        with pytest.raises(TlsRefused, match=r"does not offer TLS and STRESS_LOAN_STORE_SSLMODE=require requires "
                                             r"it.*server does not support SSL, but SSL was required"):
            _ = adapters.loan_store
    else:
        with adapters.loan_store.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar()


# The services over HTTPS.

@pytest.fixture
def https_api(adapters, token_verifier, certificate_authority):
    """The REST app served by uvicorn with the options :func:`server_tls` gives, as `serve-api` runs it."""
    import uvicorn

    from pipelines.services.rest import create_app
    from pipelines.services.tls import server_tls

    certificate = certificate_authority.issue("api")
    tls = server_tls(str(certificate.cert_path), str(certificate.key_path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(adapters, token_verifier), host="127.0.0.1", port=port,
                                           log_level="warning", **tls.uvicorn_options()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join()


@pytest.mark.parametrize("adapters", ["embedded"], indirect=True)
def test_rest_over_https_for_a_client_that_trusts_the_ca(https_api, certificate_authority) -> None:
    with httpx.Client(verify=certificate_authority.client_context(), timeout=10) as client:
        response = client.get(f"https://localhost:{https_api}/api/v1/health")
        assert response.status_code == 200 and response.json() == {"status": "SERVING"}
        assert response.extensions["network_stream"].get_extra_info("ssl_object").version() in {"TLSv1.2", "TLSv1.3"}
        assert client.get(f"https://127.0.0.1:{https_api}/api/v1/health").status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://localhost:{https_api}/api/v1/health", timeout=10)  # the system trust store
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{https_api}/api/v1/health", timeout=10)  # no plaintext


@pytest.mark.parametrize("adapters", ["embedded"], indirect=True)
def test_the_dashboard_reads_the_api_over_https_trusting_stress_tls_ca_path(
        https_api, oauth_issuer, certificate_authority, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.cli.main import dashboard_source
    from pipelines.services.errors import Unavailable
    from pipelines.settings import get_settings
    from tests.integration.conftest import CLIENTS

    for name, value in {"STRESS_DASHBOARD_API_URL": f"https://localhost:{https_api}",
                        "STRESS_DASHBOARD_TOKEN_URL": oauth_issuer.token_url,
                        "STRESS_DASHBOARD_CLIENT_ID": "risk-engine",
                        "STRESS_DASHBOARD_CLIENT_SECRET": CLIENTS["risk-engine"][0]}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STRESS_TLS_CA_PATH", str(certificate_authority.ca_path))
    get_settings.cache_clear()
    sources = []
    try:
        sources.append(dashboard_source())
        assert sources[-1].list_runs(5) == []  # the embedded stores hold no run yet
        monkeypatch.delenv("STRESS_TLS_CA_PATH")
        get_settings.cache_clear()
        sources.append(dashboard_source())
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):  # the system trust store
            sources[-1].list_runs(5)
    finally:
        for source in sources:  # an open keep-alive connection would hold the server's shutdown
            source.http.close()
        get_settings.cache_clear()


def test_server_tls_settings_that_cannot_serve_name_the_setting(certificate_authority, tmp_path: Path) -> None:
    from pipelines.services.tls import TlsSettingsError, server_tls

    one, other = certificate_authority.issue("one"), certificate_authority.issue("other")
    assert server_tls("", "") is None
    with pytest.raises(TlsSettingsError, match="STRESS_TLS_KEY_PATH is empty"):
        server_tls(str(one.cert_path), "")
    with pytest.raises(TlsSettingsError, match="STRESS_GRPC_TLS_CERT_PATH is empty"):
        server_tls("", str(one.key_path), cert_setting="STRESS_GRPC_TLS_CERT_PATH")
    with pytest.raises(TlsSettingsError, match=r"STRESS_TLS_CERT_PATH='/nonexistent\.pem' is not a readable file"):
        server_tls("/nonexistent.pem", str(one.key_path))
    with pytest.raises(TlsSettingsError, match="not a PEM certificate chain and its private key"):
        server_tls(str(one.cert_path), str(other.key_path))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(TlsSettingsError, match="not a PEM certificate chain"):
        server_tls(str(tmp_path / "junk.pem"), str(one.key_path))
    checked = server_tls(str(one.cert_path), str(one.key_path))
    assert checked.pem_pair() == (one.cert_path.read_bytes(), one.key_path.read_bytes())


@pytest.mark.parametrize("adapters", ["embedded"], indirect=True)
def test_the_http_probe_verifies_the_certificate_it_is_served(https_api, certificate_authority) -> None:
    from pipelines.services.probe import ProbeFailed, probe

    healthy = f"https://localhost:{https_api}/api/v1/health"
    assert probe(healthy, str(certificate_authority.ca_path)) == f"{healthy}: HTTP 200"
    with pytest.raises(ProbeFailed, match="CERTIFICATE_VERIFY_FAILED"):
        probe(healthy)  # the system trust store does not know the test CA
    with pytest.raises(ProbeFailed, match="HTTP 404"):
        probe(f"https://localhost:{https_api}/api/v1/nothing-here", str(certificate_authority.ca_path))
    with pytest.raises(ValueError, match="use http"):
        probe(f"localhost:{https_api}")


@pytest.mark.parametrize("adapters", ["embedded"], indirect=True)
def test_the_grpc_probe_checks_health_over_tls(adapters, token_verifier, certificate_authority) -> None:
    from pipelines.services.grpc_server import build_server
    from pipelines.services.probe import ProbeFailed, probe
    from pipelines.services.tls import server_tls

    certificate = certificate_authority.issue("grpc")
    cert, key = server_tls(str(certificate.cert_path), str(certificate.key_path)).pem_pair()
    server, port = build_server(adapters, token_verifier, "127.0.0.1:0", tls_cert_pem=cert, tls_key_pem=key)
    server.start()
    try:
        assert probe(f"grpcs://localhost:{port}", str(certificate_authority.ca_path)).endswith(": SERVING")
        with pytest.raises(ProbeFailed, match="UNAVAILABLE"):
            probe(f"grpc://localhost:{port}", timeout_seconds=3)  # plaintext to a TLS-only server
    finally:
        server.stop(grace=None)


def test_make_certs_issues_a_server_certificate_for_the_compose_services(tmp_path: Path, capsys) -> None:
    from cryptography import x509

    from pipelines.cli.main import main
    from pipelines.services.certificates import COMPOSE_NAMES
    from pipelines.services.tls import server_tls

    main(["make-certs", "--out", str(tmp_path / "tls"), "--days", "30"])
    assert "for development only" in capsys.readouterr().out
    ca = x509.load_pem_x509_certificate((tmp_path / "tls" / "ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((tmp_path / "tls" / "server.pem").read_bytes())
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {n for n in COMPOSE_NAMES if not n[0].isdigit()}
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 30
    assert (tmp_path / "tls" / "server-key.pem").stat().st_mode & 0o077 == 0
    assert server_tls(str(tmp_path / "tls" / "server.pem"), str(tmp_path / "tls" / "server-key.pem")) is not None


def test_grpc_serves_its_own_certificate_else_the_shared_one(settings, certificate_authority) -> None:
    from pipelines.cli.main import grpc_server_tls
    from pipelines.services.tls import TlsSettingsError

    shared, own = certificate_authority.issue("shared"), certificate_authority.issue("own-grpc")
    both = settings.model_copy(update={"tls_cert_path": str(shared.cert_path), "tls_key_path": str(shared.key_path)})
    assert grpc_server_tls(settings) is None
    assert grpc_server_tls(both).cert_path == shared.cert_path
    with_own = both.model_copy(update={"grpc_tls_cert_path": str(own.cert_path),
                                       "grpc_tls_key_path": str(own.key_path)})
    assert grpc_server_tls(with_own).cert_path == own.cert_path
    with pytest.raises(TlsSettingsError, match="STRESS_GRPC_TLS_KEY_PATH is empty"):
        grpc_server_tls(both.model_copy(update={"grpc_tls_cert_path": str(own.cert_path)}))
