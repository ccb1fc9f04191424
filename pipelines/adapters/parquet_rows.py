"""Rows of a Parquet object by position, reading only the row groups that hold them where the store allows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipelines.adapters.object_store import LocalObjectStore, ObjectStore


def read_parquet_rows(store: ObjectStore, key: str, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of the Parquet object at ``key`` (``stop > start``).

    From a folder store only the row groups holding those rows are read, so a Spark task or a
    simulation batch of a table of tens of millions of rows costs its own rows (and at most two partly
    used row groups), not the whole table. From S3 the object is fetched whole through the store's
    own client (its credentials and encryption settings) and sliced. The rows, their values and the
    schema's metadata are the same either way.
    """
    import pyarrow.parquet as pq

    if not isinstance(store, LocalObjectStore):
        return store.get_parquet(key).slice(start, stop - start)
    with pq.ParquetFile(store.local_path(key)) as parquet:
        ends = np.cumsum([parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])
        first = int(np.searchsorted(ends, start, side="right"))
        last = int(np.searchsorted(ends, stop - 1, side="right"))
        table = parquet.read_row_groups(list(range(first, last + 1)))
    offset = start - (int(ends[first - 1]) if first else 0)
    return table.slice(offset, stop - start)


def parquet_rows(store: ObjectStore, key: str) -> int:
    """The number of rows of the Parquet object at ``key`` (from its footer where the store allows)."""
    import pyarrow.parquet as pq

    if isinstance(store, LocalObjectStore):
        return pq.ParquetFile(store.local_path(key)).metadata.num_rows
    return store.get_parquet(key).num_rows
