"""Parquet written part by part is byte for byte what one write of the concatenated parts gives."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.adapters.object_store import LocalObjectStore


def _table(rows: int) -> pa.Table:
    numbers = pa.array(range(rows), pa.int64())
    regions = pa.array([("north", "south", "east")[i % 3] for i in range(rows)])
    return pa.table({"n": numbers, "region": regions, "x": pa.compute.divide(pa.compute.cast(numbers, pa.float64()),
                                                                          7.0)}).replace_schema_metadata(
        {"macro_quarter": "2025Q4"})


@pytest.mark.parametrize("cuts", [[0, 1000], [0, 0, 128, 128, 1000], [0, 127, 128, 129, 600, 999, 1000],
                                  [0, 256, 512, 1000]], ids=["one", "empty parts", "boundaries", "aligned"])
def test_parts_across_row_groups_give_the_bytes_of_the_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             cuts: list[int]) -> None:
    monkeypatch.setattr("pipelines.adapters.object_store._PARQUET_ROW_GROUP_ROWS", 128)
    import pyarrow.parquet as pq

    store = LocalObjectStore(tmp_path)
    table = _table(1000)
    parts = [table.slice(start, stop - start) for start, stop in itertools.pairwise(cuts)]
    rows, schema = store.put_parquet_parts("parts.parquet", iter(parts))
    whole = pa.concat_tables(parts)
    # What pyarrow writes of the same rows in one chunk, with the same row group length.
    pq.write_table(whole.combine_chunks(), tmp_path / "whole.parquet", compression="zstd", row_group_size=128)
    assert store.get_bytes("parts.parquet") == (tmp_path / "whole.parquet").read_bytes()
    assert rows == 1000 and schema.metadata[b"macro_quarter"] == b"2025Q4"
    assert pq.ParquetFile(store.local_path("parts.parquet")).num_row_groups == 8


def test_with_the_default_row_groups_it_is_put_parquet_of_the_whole(tmp_path: Path) -> None:
    """Over pyarrow's 1,048,576-row default row group: the cut falls inside a part, as write_table cuts it."""
    store = LocalObjectStore(tmp_path)
    table = _table(1_100_000)
    parts = [table.slice(0, 700_000), table.slice(700_000, 400_000)]
    store.put_parquet("whole.parquet", pa.concat_tables(parts))
    assert store.put_parquet_parts("parts.parquet", parts)[0] == 1_100_000
    assert store.get_bytes("parts.parquet") == store.get_bytes("whole.parquet")


def test_an_empty_output_keeps_its_schema_and_nothing_is_refused(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    empty = _table(0)
    store.put_parquet("whole.parquet", empty)
    assert store.put_parquet_parts("parts.parquet", [empty, empty]) == (0, empty.schema)
    assert store.get_bytes("parts.parquet") == store.get_bytes("whole.parquet")
    with pytest.raises(ValueError, match="no table to write"):
        store.put_parquet_parts("none.parquet", [])


def test_the_bytes_depend_on_the_rows_not_on_their_chunks(tmp_path: Path) -> None:
    """Loan amounts whose dictionary outgrows its page after a chunk boundary: pyarrow alone writes other
    bytes for the same rows in two chunks; the store writes one chunk a row group, so it does not."""
    import io
    from datetime import date

    import pyarrow.parquet as pq

    from pipelines.data.synthetic import generate_loan_book

    amounts = generate_loan_book(150_000, 1, date(2025, 12, 31)).select(["LoanAmount"]).combine_chunks()
    chunked = pa.concat_tables([amounts.slice(0, 131_072), amounts.slice(131_072)])

    def pyarrow_bytes(table: pa.Table) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()

    assert pyarrow_bytes(chunked) != pyarrow_bytes(amounts)  # the hazard is real for these rows
    store = LocalObjectStore(tmp_path)
    store.put_parquet("whole.parquet", amounts)
    store.put_parquet("chunked.parquet", chunked)
    store.put_parquet_parts("parts.parquet", [amounts.slice(0, 100_000), amounts.slice(100_000)])
    assert store.get_bytes("chunked.parquet") == store.get_bytes("whole.parquet") == pyarrow_bytes(amounts)
    assert store.get_bytes("parts.parquet") == store.get_bytes("whole.parquet")
