"""A loan tape behind a signed https:// URL through the same ingestion path as a file: a loopback HTTPS
server with certificates made in the test, and an S3 presigned URL signed by boto3 against moto's S3
served over HTTPS on loopback. Signatures never reach what the ingestion records."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from source_server import Reply, SourceServer

from pipelines.adapters.http_source import HttpFetcher, RetryPolicy
from pipelines.data.ingestion import TableContractError, ingest

SIGNATURE = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7"
SIGNED_QUERY = (f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260630%2Fus-east-1%2Fs3"
                f"%2Faws4_request&X-Amz-Date=20260630T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
                f"&X-Amz-Signature={SIGNATURE}")


@pytest.fixture
def tape_bytes(tmp_path: Path, valid_tape_rows, write_csv) -> bytes:
    return write_csv(valid_tape_rows, tmp_path / "book.csv").read_bytes()


@pytest.fixture
def https_server(certificate_authority):
    with SourceServer(certificate_authority.issue("tape-server").server_context()) as server:
        yield server


def same_loans(tape, reference) -> bool:
    return tape.table.equals(reference.table) and tape.malformed == reference.malformed


def test_a_tape_at_a_signed_https_url_ingests_as_the_file_does(https_server, certificate_authority, tape_bytes,
                                                              tmp_path: Path) -> None:
    url = https_server.route("/tapes/2026-06-30/book.csv", Reply(body=tape_bytes)) + SIGNED_QUERY
    fetcher = HttpFetcher(ca_bundle=str(certificate_authority.ca_path))
    tape = ingest(url, http=fetcher)
    (tmp_path / "same.csv").write_bytes(tape_bytes)
    assert same_loans(tape, ingest(str(tmp_path / "same.csv")))
    assert tape.table.num_rows == len(tape_bytes.splitlines()) - 1
    assert SIGNATURE not in tape.source and "X-Amz-Signature=***" in tape.source
    assert "AKIAEXAMPLE" not in tape.source and "X-Amz-Expires=900" in tape.source
    assert https_server.requests["/tapes/2026-06-30/book.csv"][0].path.endswith(SIGNATURE)  # sent, not shown


def test_an_untrusted_certificate_stops_the_run_at_once(https_server, tape_bytes) -> None:
    waits: list[float] = []
    url = https_server.route("/tapes/book.csv", Reply(body=tape_bytes)) + SIGNED_QUERY
    with pytest.raises(TableContractError, match=r"TLS certificate does not verify .*STRESS_HTTP_CA_BUNDLE") as stop:
        ingest(url, http=HttpFetcher(sleep=waits.append))
    assert waits == [] and SIGNATURE not in str(stop.value)


def test_an_expired_signature_says_to_sign_a_new_url(https_server, certificate_authority) -> None:
    expired = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has '
               b'expired</Message></Error>')
    url = https_server.route("/tapes/book.csv", Reply(403, expired, {"Content-Type": "application/xml"}))
    with pytest.raises(TableContractError, match=r"HTTP 403 Forbidden: .*Request has expired.*sign a new one"):
        ingest(url + SIGNED_QUERY, http=HttpFetcher(ca_bundle=str(certificate_authority.ca_path)))
    assert https_server.hits("/tapes/book.csv") == 1


def test_a_source_that_stays_down_is_a_connection_error_a_task_retry_may_heal(https_server, certificate_authority):
    url = https_server.route("/tapes/book.csv", Reply(503, b"maintenance"))
    fetcher = HttpFetcher(ca_bundle=str(certificate_authority.ca_path), retry=RetryPolicy(max_attempts=2),
                          sleep=lambda seconds: None)
    with pytest.raises(ConnectionError, match="gave up after 2 attempts"):
        ingest(url + SIGNED_QUERY, http=fetcher)


def test_plaintext_http_is_refused_for_a_tape(tape_bytes) -> None:
    with SourceServer() as plain:
        url = plain.route("/tapes/book.csv", Reply(body=tape_bytes)) + SIGNED_QUERY
        with pytest.raises(TableContractError, match="over plaintext http: use https") as stop:
            ingest(url)
        assert plain.hits("/tapes/book.csv") == 0 and SIGNATURE not in str(stop.value)


@pytest.fixture
def moto_over_https(certificate_authority, monkeypatch: pytest.MonkeyPatch):
    """moto's S3 as a server on loopback speaking HTTPS with a certificate of the test CA."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    certificate = certificate_authority.issue("moto")
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True,
                         request_handler=MotoRequestHandler, ssl_context=certificate.server_context())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_an_s3_presigned_url_from_moto_over_https(moto_over_https, certificate_authority, tape_bytes,
                                                  tmp_path: Path) -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_over_https,
                      verify=str(certificate_authority.ca_path),
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="loanstress-presigned")
    s3.put_object(Bucket="loanstress-presigned", Key="landing/book.csv", Body=tape_bytes)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "loanstress-presigned",
                                                          "Key": "landing/book.csv"}, ExpiresIn=900)
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    assert url.startswith(f"{moto_over_https}/loanstress-presigned/landing/book.csv?") and len(signature) == 64

    tape = ingest(url, http=HttpFetcher(ca_bundle=str(certificate_authority.ca_path)))
    (tmp_path / "same.csv").write_bytes(tape_bytes)
    assert same_loans(tape, ingest(str(tmp_path / "same.csv")))
    assert signature not in tape.source and tape.source.endswith("X-Amz-Signature=***")


@pytest.mark.parametrize("plaintext_reply", [Reply(body=b"LoanId\n"), Reply(503, b"down")])
def test_a_redirect_from_https_to_http_is_refused_before_anything_is_sent_in_clear(
        https_server, certificate_authority, plaintext_reply: Reply, tmp_path: Path) -> None:
    """Whatever the plaintext server would answer, even a retryable 503, it is never asked."""
    waits: list[float] = []
    with SourceServer() as plain:
        target = plain.route("/cdn/book.csv", plaintext_reply)
        url = https_server.route("/tapes/book.csv", Reply(302, headers={"Location": target})) + SIGNED_QUERY
        fetcher = HttpFetcher(ca_bundle=str(certificate_authority.ca_path), sleep=waits.append)
        with pytest.raises(TableContractError, match=r"redirected to http://127\.0\.0\.1:\d+/cdn/book\.csv, which is "
                                                     r"not https; refusing to read a source over plaintext") as stop:
            ingest(url, http=fetcher)
        assert plain.hits("/cdn/book.csv") == 0 and https_server.hits("/tapes/book.csv") == 1 and waits == []
        assert SIGNATURE not in str(stop.value)


def test_redirects_within_https_are_followed_and_a_loop_is_cut_off(https_server, certificate_authority,
                                                                   tape_bytes) -> None:
    fetcher = HttpFetcher(ca_bundle=str(certificate_authority.ca_path), sleep=lambda seconds: None)
    final = https_server.route("/objects/book.csv", Reply(body=tape_bytes))
    url = https_server.route("/tapes/book.csv", Reply(307, headers={"Location": "/moved/book.csv"}))
    https_server.route("/moved/book.csv", Reply(301, headers={"Location": final}))
    result = fetcher.get(url + SIGNED_QUERY)
    assert result.content == tape_bytes and result.url == final and result.attempts == 1
    loop = https_server.route("/loop", Reply(302, headers={"Location": "/loop"}))
    with pytest.raises(ValueError, match="more than 20 redirects"):
        fetcher.get(loop)
    assert https_server.hits("/loop") == 21
    ftp = https_server.route("/ftp", Reply(302, headers={"Location": "ftp://127.0.0.1/book.csv"}))
    with pytest.raises(ValueError, match=r"redirected to ftp://127\.0\.0\.1/book\.csv, which is not an http\(s\) URL"):
        fetcher.get(ftp)
    assert https_server.hits("/ftp") == 1
