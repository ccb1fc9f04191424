"""A single-loan lookup from S3 fetches byte ranges of the results file, not the object (moto's fake S3)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.test_s3_object_store import BUCKET, REGION, s3  # noqa: F401  (the fixture)


def test_a_lookup_reads_ranges_of_the_s3_object(s3) -> None:  # noqa: F811
    from pipelines.adapters.object_store import open_object_store, open_uri_ranges
    from pipelines.adapters.parquet_rows import read_rows_with

    store = open_object_store(f"s3://{BUCKET}/stress", REGION)
    ids = [f"L-{i:06d}" for i in range(4000)]
    table = pa.table({"LoanId": ids, "ExpectedLoss": [float(i) for i in range(4000)]})
    uri = store.put_parquet("results/x/affected_loans.parquet", table, row_group_size=500)
    ranges: list[str] = []
    with open_uri_ranges(uri, REGION) as file:
        client = file.raw.store._client  # type: ignore[attr-defined]  # the range file's own S3 client
        real_get = client.get_object

        def counted_get(**arguments):
            ranges.append(arguments.get("Range", "whole object"))
            return real_get(**arguments)

        client.get_object = counted_get
        found, groups_read = read_rows_with(file, "LoanId", "L-003210")
    assert found.to_pylist() == [{"LoanId": "L-003210", "ExpectedLoss": 3210.0}]
    assert groups_read == 1
    assert ranges and "whole object" not in ranges
    assert pq.read_table(io.BytesIO(store.get_bytes("results/x/affected_loans.parquet"))).equals(table)


def test_a_missing_object_is_file_not_found(s3) -> None:  # noqa: F811
    from pipelines.adapters.object_store import open_object_store

    with pytest.raises(FileNotFoundError):
        open_object_store(f"s3://{BUCKET}/stress", REGION).open_ranges("results/none.parquet")


def test_a_row_range_from_s3_reads_only_its_row_groups(s3) -> None:  # noqa: F811
    """What a Spark task or a simulation batch reads of a snapshot in S3: its rows, not the object."""
    import numpy as np

    from pipelines.adapters.object_store import open_object_store
    from pipelines.adapters.parquet_rows import parquet_rows, read_parquet_rows

    store = open_object_store(f"s3://{BUCKET}/stress", REGION)
    values = np.random.default_rng(7).random(80_000)  # incompressible: each row group is 1/8 of the bytes
    table = pa.table({"n": pa.array(np.arange(80_000)), "x": values})
    store.put_parquet("snapshots/s/loans.parquet", table, row_group_size=10_000)
    size = s3.head_object(Bucket=BUCKET, Key="stress/snapshots/s/loans.parquet")["ContentLength"]
    fetched: list[int] = []
    real_get = store._client.get_object

    def counted_get(**arguments):
        reply = real_get(**arguments)
        fetched.append(reply["ContentLength"] if "Range" in arguments else size * 1000)  # a whole GET fails below
        return reply

    store._client.get_object = counted_get
    rows = read_parquet_rows(store, "snapshots/s/loans.parquet", 25_000, 34_000)  # row groups 2 and 3
    assert rows.equals(table.slice(25_000, 9_000))
    assert 0 < sum(fetched) < size * 0.4
    fetched.clear()
    assert parquet_rows(store, "snapshots/s/loans.parquet") == 80_000
    assert 0 < sum(fetched) < size * 0.1  # the footer: pyarrow reads its last 64 KiB
