"""Writing a table to where a loan tape or history can later be ingested from: a file, an object, a SQL table."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


def write_table(table: Any, destination: str, aws_region: str = "us-east-1") -> str:
    """Write an Arrow table to ``.csv``/``.parquet`` (path or URI) or ``<sqlalchemy url>?table=NAME``."""
    import pyarrow as pa

    if isinstance(table, pa.Table) is False:
        table = pa.Table.from_pandas(table, preserve_index=False)
    parsed = urlparse(destination)
    if parsed.scheme.startswith(("postgresql", "sqlite")):
        return _write_sql(table, destination)
    import io

    buffer = io.BytesIO()
    if destination.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, buffer, compression="zstd")
    elif destination.endswith(".csv"):
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, buffer)
    else:
        raise ValueError(f"cannot tell the format of {destination!r}: use .csv, .parquet or a SQL URL ?table=")
    from pipelines.adapters.object_store import open_object_store

    if parsed.scheme in {"", "file"}:
        path = Path(parsed.path if parsed.scheme else destination).resolve()
        return open_object_store(path.parent.as_uri()).put_bytes(path.name, buffer.getvalue())
    parent, _, name = destination.rpartition("/")
    return open_object_store(parent, aws_region).put_bytes(name, buffer.getvalue())


def _write_sql(table: Any, destination: str) -> str:
    """Replace a SQL table with the rows of ``table`` (all columns as text: a raw landing table)."""
    import pyarrow as pa
    import sqlalchemy as sa

    parsed = urlparse(destination)
    name = parse_qs(parsed.query)["table"][0]
    url = destination.split("?", 1)[0]
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    text = table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]))
    meta = sa.MetaData()
    target = sa.Table(name, meta, *[sa.Column(column, sa.Text) for column in text.column_names])
    with engine.begin() as connection:
        target.drop(connection, checkfirst=True)
        target.create(connection)
        for batch in text.to_batches(max_chunksize=50_000):
            connection.execute(target.insert(), batch.to_pylist())
    return destination
