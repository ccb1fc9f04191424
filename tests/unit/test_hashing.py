"""The content hash of a table in parts is the hash of the whole table, for every cut and chunking.

``content_hash`` (one Arrow IPC stream of the table in one chunk) names snapshots and builds each
tape's ``input_sha256``; ``content_hash_of_parts`` must give the same value without holding the table,
or the Spark ETL would record other hashes than the local path for the same tape.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import itertools
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.data import hashing
from pipelines.data.hashing import content_hash, content_hash_of_parts

SCHEMA = pa.schema([
    pa.field("text", pa.string(), nullable=False), pa.field("large_text", pa.large_string()),
    pa.field("money", pa.decimal128(18, 2)), pa.field("day", pa.date32()), pa.field("flag", pa.bool_()),
    pa.field("score", pa.int16()), pa.field("ratio", pa.float64()), pa.field("blob", pa.binary()),
])
_TEXT = st.text(alphabet="ab\u00e9\u4e2d\x00,\"", max_size=6)
_ROW = st.fixed_dictionaries({
    "text": _TEXT, "large_text": st.none() | _TEXT,
    "money": st.none() | st.integers(-10**15, 10**15).map(lambda cents: decimal.Decimal(cents) / 100),
    "day": st.none() | st.dates(datetime.date(1970, 1, 1), datetime.date(2100, 1, 1)),
    "flag": st.none() | st.booleans(), "score": st.none() | st.integers(-2**15, 2**15 - 1),
    "ratio": st.none() | st.floats(allow_nan=False), "blob": st.none() | st.binary(max_size=5),
})


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _parts(table: pa.Table, cuts: list[int], rechunk: bool) -> list[pa.Table]:
    bounds = [0, *sorted(min(cut, table.num_rows) for cut in cuts), table.num_rows]
    parts = [table.slice(start, stop - start) for start, stop in itertools.pairwise(bounds)]
    if rechunk:  # parts of several chunks, some starting off a byte boundary of the bitmaps
        parts = [pa.concat_tables([part.slice(0, part.num_rows // 3), part.slice(part.num_rows // 3)])
                 for part in parts]
    return parts


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_ROW, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=5), rechunk=st.booleans())
def test_the_hash_of_parts_is_the_hash_of_their_concatenation(rows, cuts, rechunk) -> None:
    table = _table(rows)
    parts = _parts(table, cuts, rechunk)
    assert content_hash_of_parts(parts) == content_hash(pa.concat_tables(parts)) == content_hash(table)


def test_the_hash_sees_order_values_nulls_and_schema() -> None:
    rows = [{"text": f"L-{i}", "large_text": None if i % 3 else "x", "money": decimal.Decimal(i) / 4,
             "day": datetime.date(2020, 1, 1 + i), "flag": i % 2 == 0, "score": i, "ratio": i / 7, "blob": b"\x00"}
            for i in range(20)]
    table = _table(rows)
    reference = content_hash_of_parts(_parts(table, [7, 13], rechunk=True))
    assert reference == content_hash(table)
    swapped = [table.slice(10), table.slice(0, 10)]
    assert content_hash_of_parts(swapped) != reference
    changed = _table([*rows[:5], {**rows[5], "money": decimal.Decimal("0.01")}, *rows[6:]])
    assert content_hash_of_parts(_parts(changed, [5], rechunk=False)) != reference
    nulled = _table([*rows[:5], {**rows[5], "flag": None}, *rows[6:]])
    assert content_hash_of_parts(_parts(nulled, [9], rechunk=False)) != reference
    relaxed = table.cast(pa.schema([field.with_nullable(True) for field in SCHEMA]))
    assert content_hash_of_parts([relaxed]) != reference


def test_parts_of_other_schemas_no_parts_and_nested_columns_are_refused(tmp_path: Path) -> None:
    table = _table([{"text": "a"}])
    with pytest.raises(ValueError, match="schemas differ"):
        content_hash_of_parts([table, table.drop_columns(["blob"])])
    with pytest.raises(ValueError, match="no part"):
        content_hash_of_parts([])
    with pytest.raises(TypeError, match="list<item: int64>"):
        content_hash_of_parts([pa.table({"values": [[1, 2]]})])


def test_text_beyond_what_32_bit_offsets_address_is_hashed_as_its_large_type(monkeypatch) -> None:
    """Above the limit (2 GiB, lowered here) a text column is hashed as ``large_string``, whole or in parts."""
    monkeypatch.setattr(hashing, "_MAX_SMALL_BINARY_BYTES", 10)
    parts = [pa.table({"text": ["abcdef", None], "short": ["a", "b"]}),
             pa.table({"text": ["ghijkl", ""], "short": [None, "c"]})]
    whole = pa.concat_tables(parts)
    large = pa.schema([pa.field("text", pa.large_string()), pa.field("short", pa.string())])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, large) as writer:  # the definition, written out independently
        writer.write_table(whole.cast(large).combine_chunks())
    expected = hashlib.sha256(sink.getvalue()).hexdigest()
    assert content_hash_of_parts(parts) == content_hash(whole) == expected
    monkeypatch.setattr(hashing, "_MAX_SMALL_BINARY_BYTES", 12)  # exactly at the limit: the column's own type
    assert content_hash_of_parts(parts) == content_hash(whole) != expected


def test_the_spilled_columns_are_removed(tmp_path: Path) -> None:
    content_hash_of_parts([_table([{"text": "a", "money": decimal.Decimal("1.00")}])] * 3, spill_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
