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
