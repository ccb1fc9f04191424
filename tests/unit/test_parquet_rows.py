"""Ranged Parquet reads give the rows a whole read and a slice give, whatever the row groups."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.adapters.object_store import LocalObjectStore
from pipelines.adapters.parquet_rows import parquet_rows, read_parquet_rows


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    table = pa.table({"n": pa.array(range(1000), pa.int64()), "x": pa.array([i / 7 for i in range(1000)])})
    table = table.replace_schema_metadata({"as_of": "2025-12-31"})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=128)  # 8 groups, the last one partial
    store = LocalObjectStore(tmp_path)
    store.put_bytes("t.parquet", buffer.getvalue())
    return store


@pytest.mark.parametrize(("start", "stop"), [(0, 1000), (0, 1), (127, 129), (128, 256), (300, 301), (999, 1000),
                                             (5, 900)])
def test_a_row_range_is_the_slice_of_the_whole_table(store: LocalObjectStore, start: int, stop: int) -> None:
    whole = store.get_parquet("t.parquet")
    rows = read_parquet_rows(store, "t.parquet", start, stop)
    assert rows.equals(whole.slice(start, stop - start))
    assert rows.column("n").to_pylist() == list(range(start, stop))
    assert rows.schema.metadata == whole.schema.metadata


def test_the_row_count_comes_from_the_footer(store: LocalObjectStore) -> None:
    assert parquet_rows(store, "t.parquet") == 1000
