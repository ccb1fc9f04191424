"""The S3 object store, ingestion from s3:// and publishing a snapshot to S3, against moto's fake S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.data.ingestion import TableContractError, ingest

BUCKET = "loanstress-test-bucket"
REGION = "us-east-1"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A moto S3 with one empty bucket; fake credentials so nothing can reach real AWS."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_put_get_exists_and_list(s3) -> None:
    from pipelines.adapters.object_store import S3ObjectStore, open_object_store

    store = open_object_store(f"s3://{BUCKET}/stress/", REGION)
    assert isinstance(store, S3ObjectStore)
    assert store.root_uri == f"s3://{BUCKET}/stress"
    assert store.put_bytes("snapshots/a/manifest.json", b"{}") == f"s3://{BUCKET}/stress/snapshots/a/manifest.json"
    store.put_bytes("snapshots/b/loans.parquet", b"PAR1")
    store.put_bytes("runs/r1/steps/ingest.json", b"[]")
    s3.put_object(Bucket=BUCKET, Key="stress-other/snapshots/c/manifest.json", Body=b"not ours")
    s3.put_object(Bucket=BUCKET, Key="elsewhere.csv", Body=b"not ours either")

    assert s3.get_object(Bucket=BUCKET, Key="stress/snapshots/a/manifest.json")["Body"].read() == b"{}"
    assert store.get_bytes("snapshots/b/loans.parquet") == b"PAR1"
    assert store.exists("snapshots/a/manifest.json")
    assert not store.exists("snapshots/a/missing.json")
    assert store.list_keys() == ["runs/r1/steps/ingest.json", "snapshots/a/manifest.json",
                                 "snapshots/b/loans.parquet"]
    assert store.list_keys("snapshots/") == ["snapshots/a/manifest.json", "snapshots/b/loans.parquet"]
    assert store.list_keys("nothing/") == []


def test_overwrite_replaces_the_object(s3) -> None:
    from pipelines.adapters.object_store import open_object_store

    store = open_object_store(f"s3://{BUCKET}/stress", REGION)
    store.put_bytes("k.txt", b"first")
    store.put_bytes("k.txt", b"second")
    assert store.get_bytes("k.txt") == b"second"
    assert store.list_keys() == ["k.txt"]


def test_store_at_the_bucket_root(s3) -> None:
    from pipelines.adapters.object_store import open_object_store

    store = open_object_store(f"s3://{BUCKET}", REGION)
    assert store.put_bytes("top.txt", b"x") == f"s3://{BUCKET}/top.txt"
    assert store.list_keys() == ["top.txt"]
    assert store.exists("top.txt")


def test_parquet_round_trip_keeps_exact_decimals(s3) -> None:
    from pipelines.adapters.object_store import open_object_store

    store = open_object_store(f"s3://{BUCKET}/stress", REGION)
    table = pa.table({"LoanAmount": pa.array([Decimal("123456.78"), Decimal("9999999999.99")],
                                             pa.decimal128(18, 2))})
    store.put_parquet("t.parquet", table)
    assert store.get_parquet("t.parquet").equals(table)


def test_s3_uri_without_bucket_is_refused() -> None:
    from pipelines.adapters.object_store import open_object_store

    with pytest.raises(ValueError, match="names no bucket"):
        open_object_store("s3:///prefix")


@pytest.mark.parametrize("key", ["inputs/2025-12-31/loan_tape.csv", "loan_tape.csv"])
def test_ingest_from_an_s3_csv(s3, tmp_path: Path, valid_tape_rows, write_csv, key: str) -> None:
    path = write_csv(valid_tape_rows, tmp_path / "tape.csv")
    s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    tape = ingest(f"s3://{BUCKET}/{key}")
    assert tape.source == f"s3://{BUCKET}/{key}"
    assert tape.table.equals(ingest(str(path)).table)
    assert tape.type_errors == {} and tape.malformed == []


def test_ingest_from_a_missing_s3_object_stops_the_run(s3) -> None:
    with pytest.raises(TableContractError, match="does not exist"):
        ingest(f"s3://{BUCKET}/inputs/missing.csv")


def test_stage_and_publish_to_s3(s3, make_settings, tmp_path: Path, valid_tape_rows, write_csv,
                                 publish_snapshot) -> None:
    from pipelines.adapters.loan_store import LoanStore
    from pipelines.adapters.object_store import open_object_store
    from pipelines.data.snapshots import load_staged_tape, stage_tape

    rows = [*valid_tape_rows, {**valid_tape_rows[0], "LoanId": "SEC-1", "CollateralValue": ""}]
    path = write_csv(rows, tmp_path / "tape.csv")
    s3.put_object(Bucket=BUCKET, Key="inputs/loan_tape.csv", Body=path.read_bytes())
    settings = make_settings(tmp_path / "home", object_store_uri=f"s3://{BUCKET}/stress")
    store = open_object_store(settings.resolved_object_store_uri, settings.aws_region)

    staged = stage_tape(f"s3://{BUCKET}/inputs/loan_tape.csv", "manual__2025-12-31",
                       open_object_store(settings.resolved_object_store_uri), settings.aws_region,
                       loan_store=LoanStore(settings.resolved_loan_store_url))
    assert staged["input_rows"] == len(rows)
    assert store.exists("staging/manual__2025-12-31/typed.parquet")
    manifest = publish_snapshot(load_staged_tape(staged, store), None, settings, airflow_run_id="manual__1")

    prefix = f"snapshots/{manifest['snapshot_id']}"
    ingestion = f"ingestions/{manifest['ingestion_id']}"
    keys = store.list_keys()
    for key in (f"{prefix}/loans.parquet", f"{prefix}/manifest.json", f"{ingestion}/quarantine.parquet",
                f"{ingestion}/manifest.json", f"{ingestion}/data_docs/index.html"):
        assert key in keys, key
    root = f"s3://{BUCKET}/stress"
    assert manifest["snapshot_uri"] == f"{root}/{prefix}/loans.parquet"
    assert manifest["quarantine_uri"] == f"{root}/{ingestion}/quarantine.parquet"
    assert manifest["data_docs_uri"] == f"{root}/{ingestion}/data_docs/index.html"
    stored_manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"stress/{ingestion}/manifest.json")["Body"].read())
    assert stored_manifest == manifest
    assert (manifest["input_rows"], manifest["accepted_rows"], manifest["quarantined_rows"]) == (29, 28, 1)

    quarantine = store.get_parquet(f"{ingestion}/quarantine.parquet").to_pylist()
    assert [(q["row_number"], q["reasons"]) for q in quarantine] == [(29, "secured_has_collateral")]
    assert json.loads(quarantine[0]["raw_record"])["LoanId"] == "SEC-1"
    loans = store.get_parquet(f"{prefix}/loans.parquet")
    # Snapshots are stored in LoanId order, whatever order the source had.
    assert loans.column("LoanId").to_pylist() == sorted(r["LoanId"] for r in valid_tape_rows)
    assert LoanStore(settings.resolved_loan_store_url).read_snapshot(manifest["snapshot_id"]).equals(loans)


DENY_ALL = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Deny", "Principal": "*", "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}


@pytest.fixture
def iam_user_keys(s3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Keys of an IAM user allowed s3:* by its own policy, set as the process's AWS credentials."""
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="loanstress")
    iam.put_user_policy(UserName="loanstress", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="loanstress")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    return key


def test_a_bucket_policy_denial_names_the_object_the_permission_and_the_setting(s3, iam_user_keys) -> None:
    from moto.core import set_initial_no_auth_action_count

    from pipelines.adapters.object_store import ObjectStoreAccessError, open_object_store

    s3.put_object(Bucket=BUCKET, Key="stress/snapshots/a/manifest.json", Body=b"{}")
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(DENY_ALL))

    @set_initial_no_auth_action_count(0)  # moto checks IAM and bucket policies from here on
    def attempts() -> None:
        store = open_object_store(f"s3://{BUCKET}/stress", REGION)
        with pytest.raises(ObjectStoreAccessError, match=rf"S3 denied get of s3://{BUCKET}/stress/snapshots/a/"
                                                          r"manifest.json .* need s3:GetObject on arn:aws:s3:::"
                                                          rf"{BUCKET}/stress/snapshots/a/manifest.json.* "
                                                          r"STRESS_OBJECT_STORE_URI"):
            store.get_bytes("snapshots/a/manifest.json")
        with pytest.raises(ObjectStoreAccessError, match=r"S3 denied put .* s3:PutObject"):
            store.put_bytes("snapshots/b/manifest.json", b"{}")
        with pytest.raises(ObjectStoreAccessError, match="S3 denied head"):
            store.exists("snapshots/a/manifest.json")
        with pytest.raises(ObjectStoreAccessError, match=rf"S3 denied copy of s3://{BUCKET}/stress/snapshots/a/"
                                                          rf"manifest.json to s3://{BUCKET}/stress/snapshots/c/"
                                                          r"manifest.json .* need s3:GetObject on arn:aws:s3:::"
                                                          rf"{BUCKET}/stress/snapshots/a/manifest.json and "
                                                          rf"s3:PutObject on arn:aws:s3:::{BUCKET}/stress/"
                                                          r"snapshots/c/manifest.json"):
            store.copy("snapshots/a/manifest.json", "snapshots/c/manifest.json")
        # A loan tape behind the same policy stops the run, naming the tape's setting.
        with pytest.raises(TableContractError, match=r"cannot read loan tape .*S3 denied get.*source_uri or "
                                                     r"STRESS_LOAN_TAPE_URI"):
            ingest(f"s3://{BUCKET}/stress/snapshots/a/tape.csv", REGION)

    attempts()


def test_invalid_credentials_say_so(s3) -> None:
    from moto.core import set_initial_no_auth_action_count

    from pipelines.adapters.object_store import ObjectStoreAccessError, open_object_store

    @set_initial_no_auth_action_count(0)
    def attempt() -> None:  # the fixture's "testing" keys belong to no IAM user
        store = open_object_store(f"s3://{BUCKET}/stress", REGION)
        for call in (lambda: store.get_bytes("a.json"), lambda: store.list_keys("snapshots/")):
            with pytest.raises(ObjectStoreAccessError, match=r"rejected the AWS credentials .*InvalidAccessKeyId.*"
                                                             r"invalid or expired.*AWS_PROFILE"):
                call()

    attempt()


def test_a_missing_bucket_names_the_bucket_and_the_setting(s3) -> None:
    from pipelines.adapters.object_store import ObjectStoreAccessError, open_object_store

    store = open_object_store("s3://loanstress-no-such-bucket/stress", REGION)
    for call in (lambda: store.put_bytes("a.json", b"{}"), lambda: store.get_bytes("a.json"),
                 lambda: store.list_keys()):
        with pytest.raises(ObjectStoreAccessError, match=r"S3 bucket 'loanstress-no-such-bucket' does not exist .*"
                                                         r"check STRESS_OBJECT_STORE_URI"):
            call()


def test_expired_session_credentials_say_so(s3) -> None:
    from botocore.stub import Stubber

    from pipelines.adapters.object_store import ObjectStoreAccessError, S3ObjectStore

    store = S3ObjectStore(BUCKET, "stress", REGION)
    with Stubber(store._client) as stub:  # moto has no session expiry: S3's reply is stubbed
        stub.add_client_error("put_object", service_error_code="ExpiredToken", http_status_code=400,
                              service_message="The provided token has expired.")
        with pytest.raises(ObjectStoreAccessError, match=r"ExpiredToken.*invalid or expired.*aws sso login"):
            store.put_bytes("a.json", b"{}")


def test_other_s3_errors_pass_unchanged(s3) -> None:
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    from pipelines.adapters.object_store import ObjectStoreAccessError, S3ObjectStore

    store = S3ObjectStore(BUCKET, "stress", REGION)
    with Stubber(store._client) as stub:
        stub.add_client_error("put_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(ClientError) as raised:
            store.put_bytes("a.json", b"{}")
    assert not isinstance(raised.value, ObjectStoreAccessError)


def test_parquet_parts_stream_up_encrypted_as_put_parquet_writes_them(s3) -> None:
    import boto3

    from pipelines.adapters.object_store import S3ObjectStore, ServerSideEncryption

    key_arn = boto3.client("kms", region_name=REGION).create_key(Description="loanstress")["KeyMetadata"]["Arn"]
    store = S3ObjectStore(BUCKET, "stress", REGION, encryption=ServerSideEncryption(key_arn))
    table = pa.table({"n": pa.array(range(5000), pa.int64())})
    store.put_parquet("whole.parquet", table)
    assert store.put_parquet_parts("parts.parquet", [table.slice(0, 1234), table.slice(1234)])[0] == 5000
    assert store.get_bytes("parts.parquet") == store.get_bytes("whole.parquet")
    head = s3.head_object(Bucket=BUCKET, Key="stress/parts.parquet")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn


def test_a_copy_is_server_side_and_encrypted_with_the_stores_key(s3) -> None:
    import boto3

    from pipelines.adapters.object_store import S3ObjectStore, ServerSideEncryption

    key_arn = boto3.client("kms", region_name=REGION).create_key(Description="loanstress")["KeyMetadata"]["Arn"]
    s3.put_object(Bucket=BUCKET, Key="stress/staging/quarantine.parquet", Body=b"PAR1 quarantine bytes")  # unencrypted
    store = S3ObjectStore(BUCKET, "stress", REGION, encryption=ServerSideEncryption(key_arn))
    uri = store.copy("staging/quarantine.parquet", "ingestions/i/quarantine.parquet")
    assert uri == f"s3://{BUCKET}/stress/ingestions/i/quarantine.parquet"
    assert store.get_bytes("ingestions/i/quarantine.parquet") == b"PAR1 quarantine bytes"
    head = s3.head_object(Bucket=BUCKET, Key="stress/ingestions/i/quarantine.parquet")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn
    with pytest.raises(FileNotFoundError):
        store.copy("staging/missing.parquet", "ingestions/i/other.parquet")
