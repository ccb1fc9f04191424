"""The single-loan lookup of the per-loan results: the same row a full scan finds, from fewer row groups.

The file is written the way the reduce step writes it (:func:`pipelines.engine.drilldown.write_loan_results`:
sorted by LoanId, small row groups); the reads are counted by a file wrapper, so the test sees what a
lookup fetched, not what the code says it fetched.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.adapters.object_store import LocalObjectStore, open_uri_ranges
from pipelines.adapters.parquet_rows import read_rows_with, row_groups_holding
from pipelines.engine.drilldown import write_loan_results

LOANS = 5_000
ROWS_PER_GROUP = 500


class CountingFile(io.RawIOBase):
    """A seekable file over ``data`` that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position, self.bytes_read = data, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: len(self.data)}[whence] + offset
        return self.position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self.data[self.position:self.position + len(buffer)]
        buffer[:len(chunk)] = chunk
        self.position += len(chunk)
        self.bytes_read += len(chunk)
        return len(chunk)


def _loans() -> pa.Table:
    """A book in shuffled order (the writer sorts), with random-looking results and 9-quarter paths."""
    rng = np.random.default_rng(7)
    order = rng.permutation(LOANS)
    ids = pa.array([f"L-{i:07d}" for i in order])
    return pa.table({
        "LoanId": ids, "ProductSegment": pa.array(["auto", "heloc"] * (LOANS // 2)),
        "ProjectedDefaultRisk": rng.uniform(0, 1, LOANS), "ProjectedBalance": rng.uniform(0, 1e6, LOANS).round(2),
        "ExpectedLoss": rng.uniform(0, 1e4, LOANS),
        "QuarterlyPD": pa.FixedSizeListArray.from_arrays(rng.uniform(0, 0.1, LOANS * 9).astype(np.float32), 9),
        "QuarterlyBalance": pa.FixedSizeListArray.from_arrays(rng.uniform(0, 1e6, LOANS * 9).round(2), 9)})


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalObjectStore, str, bytes]:
    store = LocalObjectStore(tmp_path_factory.mktemp("store"))
    # Many row groups on a small book.
    uri = write_loan_results(store, "results/base/affected_loans.parquet", _loans(), rows_per_group=ROWS_PER_GROUP)
    return store, uri, store.get_bytes("results/base/affected_loans.parquet")


def test_the_results_file_is_sorted_in_small_row_groups(stored) -> None:
    _, _, data = stored
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.num_row_groups == LOANS // ROWS_PER_GROUP
    ids = parquet.read(columns=["LoanId"]).column("LoanId").to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == LOANS


@pytest.mark.parametrize("loan_id", ["L-0000000", "L-0002499", "L-0002500", "L-0004999"])
def test_a_lookup_finds_the_full_scans_row_from_one_row_group(stored, loan_id: str) -> None:
    _, _, data = stored
    full = pq.read_table(io.BytesIO(data))
    expected = full.filter(pc.equal(full.column("LoanId"), loan_id))
    file = CountingFile(data)
    found, groups_read = read_rows_with(file, "LoanId", loan_id)
    assert found.equals(expected) and found.num_rows == 1
    assert groups_read == 1
    assert file.bytes_read < len(data) / 4  # the footer and one of ten row groups, not the file


def test_an_unknown_loan_reads_no_row_group(stored) -> None:
    _, _, data = stored
    for loan_id in ("A-unknown", "L-0001234x", "Z"):
        found, groups_read = read_rows_with(CountingFile(data), "LoanId", loan_id)
        assert found.num_rows == 0 and groups_read <= 1  # between two ids of one group, it is read and not found


def test_row_groups_without_order_are_all_candidates() -> None:
    """On an unsorted file every row group's range may hold an id: the lookup stays right, only slower."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"LoanId": ["b", "z", "a", "y"]}), buffer, row_group_size=2)
    metadata = pq.ParquetFile(io.BytesIO(buffer.getvalue())).metadata
    assert row_groups_holding(metadata, "LoanId", "c") == [0, 1]
    assert row_groups_holding(metadata, "LoanId", "zz") == []


def test_a_file_uri_opens_for_ranged_reads(stored) -> None:
    _, uri, _ = stored
    with open_uri_ranges(uri) as file:
        found, _ = read_rows_with(file, "LoanId", "L-0000042")
    assert found.column("LoanId").to_pylist() == ["L-0000042"]
