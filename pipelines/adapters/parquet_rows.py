"""Rows of a Parquet object by position, reading only the row groups that hold them where the store allows."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.adapters.object_store import LocalObjectStore, ObjectStore


def read_parquet_rows(store: ObjectStore, key: str, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of the Parquet object at ``key`` (``stop > start``).

    Only the footer and the row groups holding those rows are read (seeks in a folder store, ranged
    GETs through the S3 store's own client, with its credentials), so a Spark task or a simulation
    batch of a table of tens of millions of rows costs its own rows (and at most two partly used row
    groups), not the whole table. The rows, their values and the schema's metadata are those of a
    whole read, sliced.
    """
    with _seekable(store, key) as file, pq.ParquetFile(file) as parquet:
        ends = np.cumsum([parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])
        first = int(np.searchsorted(ends, start, side="right"))
        last = int(np.searchsorted(ends, stop - 1, side="right"))
        table = parquet.read_row_groups(list(range(first, last + 1)))
    offset = start - (int(ends[first - 1]) if first else 0)
    return table.slice(offset, stop - start)


def parquet_rows(store: ObjectStore, key: str) -> int:
    """The number of rows of the Parquet object at ``key``, from its footer."""
    with _seekable(store, key) as file, pq.ParquetFile(file) as parquet:
        return parquet.metadata.num_rows


def _seekable(store: ObjectStore, key: str) -> AbstractContextManager[str | BinaryIO]:
    """What pyarrow reads ``key`` from: a folder store's file by path (pyarrow's own reads, no Python file
    object in between, as the simulation batches read their features), else the store's ranged reads."""
    if isinstance(store, LocalObjectStore):
        return nullcontext(str(store.local_path(key)))
    return store.open_ranges(key)


def row_groups_holding(metadata: pq.FileMetaData, column: str, value: str) -> list[int]:
    """The row groups whose min-max statistics of ``column`` admit ``value`` (every one without statistics).

    On a file sorted by ``column`` the ranges do not overlap, so a value falls in at most one row group
    (two when it straddles a boundary, which a unique key cannot).
    """
    position = metadata.schema.to_arrow_schema().get_field_index(column)
    holding = []
    for index in range(metadata.num_row_groups):
        statistics = metadata.row_group(index).column(position).statistics
        if statistics is None or not statistics.has_min_max or statistics.min <= value <= statistics.max:
            holding.append(index)
    return holding


def read_rows_with(file: BinaryIO, column: str, value: str) -> tuple[pa.Table, int]:
    """The rows of the Parquet ``file`` whose ``column`` equals ``value``, and how many row groups were read.

    Only the footer and the row groups that :func:`row_groups_holding` admits are read, so on a file of
    ranged reads (:meth:`~pipelines.adapters.object_store.ObjectStore.open_ranges`) a lookup by a sorted
    key costs the footer and one row group whatever the file's size.
    """
    import pyarrow.compute as pc

    with pq.ParquetFile(file) as parquet:
        groups = row_groups_holding(parquet.metadata, column, value)
        table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
    return table.filter(pc.equal(table.column(column), value)), len(groups)
