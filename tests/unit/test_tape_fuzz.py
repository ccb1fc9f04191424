"""Property: however a valid tape is mangled, ingest + validate either stop with a TableContractError or
account for every input row (accepted + quarantined == the rows counted here, independently).

The mangling is arbitrary on purpose: random bytes inserted and deleted, other encodings (latin-1,
UTF-16 with a BOM), other delimiters, quoting and line endings, dropped or duplicated header lines and
columns, random cell values, and Parquet files with random (also non-UTF-8) values and extra columns.
The independent row count is Python's ``csv`` module on the final bytes (non-empty records after the
header), or the Parquet file's own row count: never the ingestion code's.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pipelines.data.contract import COLUMN_NAMES
from pipelines.data.ingestion import TableContractError, ingest
from pipelines.data.validation import validate

# A cell value: anything text, a number-ish string, or a short run of raw (possibly non-UTF-8) bytes.
cell_value = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "+5", "-0", "1e25", "1e-20", "10000000000.00", "NaN", "2021-02-30", "\x00", '"', "\r"]),
    st.binary(max_size=6).map(lambda raw: raw.decode("latin-1")),
)
cell_edits = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(COLUMN_NAMES), cell_value), max_size=4)

csv_layout = st.fixed_dictionaries({
    "delimiter": st.sampled_from([",", ",", ",", ",", ",", ";", "\t", "|"]),
    "quoting": st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    "line_end": st.sampled_from(["\n", "\r\n", "\r"]),
    "header": st.sampled_from(["keep", "keep", "keep", "keep", "drop", "twice", "duplicate_column", "drop_column"]),
    "encoding": st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]),
})
byte_edit = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
)


def tape_rows(factory, copies: int, edits: list[tuple[int, str, str]]) -> list[dict[str, str]]:
    """``copies`` of the valid loans, each with a unique LoanId, then the cell edits applied."""
    valid = factory()
    rows = [{**valid[i % len(valid)], "LoanId": f"{valid[i % len(valid)]['LoanId']}-{i}"} for i in range(copies)]
    for index, column, value in edits:
        rows[index % len(rows)][column] = value
    return rows


def csv_tape(rows: list[dict[str, str]], layout: dict[str, Any], byte_edits: list[tuple]) -> bytes:
    columns = list(COLUMN_NAMES)
    if layout["header"] == "drop_column":
        columns.remove("Region")
    elif layout["header"] == "duplicate_column":
        columns.append("LoanAmount")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=layout["delimiter"], quoting=layout["quoting"],
                        lineterminator=layout["line_end"])
    if layout["header"] != "drop":
        writer.writerow(columns)
    if layout["header"] == "twice":
        writer.writerow(columns)
    writer.writerows([row.get(column, "") for column in columns] for row in rows)
    data = buffer.getvalue().encode(layout["encoding"], errors="replace")
    for edit in byte_edits:
        position = edit[1] % (len(data) + 1)
        if edit[0] == "insert":
            data = data[:position] + edit[2] + data[position:]
        else:
            data = data[:position] + data[position + edit[2]:]
    return data


def csv_record_count(data: bytes) -> int:
    """Non-empty CSV records after the header, as Python's own csv module reads the bytes."""
    text = data.decode("utf-8", errors="surrogateescape")
    records = [fields for fields in csv.reader(io.StringIO(text, newline="")) if fields]
    return max(len(records) - 1, 0)


def parquet_tape(rows: list[dict[str, str]], raw_values: list[tuple[int, str, bytes]], extra: str) -> bytes:
    columns: dict[str, pa.Array] = {}
    for column in COLUMN_NAMES:
        cells = [row[column].encode("utf-8", errors="surrogatepass") or None for row in rows]
        for index, name, raw in raw_values:
            if name == column:
                cells[index % len(cells)] = raw
        columns[column] = pa.array(cells, pa.binary()).view(pa.string())  # not validated: may hold bad UTF-8
    table = pa.table(columns)
    n = table.num_rows
    if extra == "nested":
        table = (table.append_column("Tags", pa.array([[i] for i in range(n)]))
                 .append_column("Address", pa.array([{"zip": str(i)} for i in range(n)]))
                 .append_column("Attributes", pa.array([[("k", i)] for i in range(n)],
                                                       pa.map_(pa.string(), pa.int64()))))
    elif extra == "duplicate":
        table = table.append_column("Region", table.column("Region"))
    elif extra == "typed":
        table = table.set_column(table.column_names.index("CreditScore"), "CreditScore",
                                 pa.array(range(n), pa.int64()))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


_QUOTED = re.compile(r"'[^']*'")  # paths and values in error messages, blanked so the statistics group them


def ingest_and_validate(data: bytes, suffix: str, expected_rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"tape{suffix}"
        path.write_bytes(data)
        try:
            tape = ingest(str(path))
            outcome = validate(tape, duplicate_tolerance=0.01, balance_tolerance=0.05)
        except TableContractError as error:
            event("table error: " + _QUOTED.sub("'...'", str(error))[:60])
            return
    event("rows accounted for")
    assert outcome.input_rows == expected_rows
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == expected_rows


# Every example is a GX run: few examples and no shrinking (which would re-run GX hundreds of times);
# Hypothesis still prints the failing example as generated. The suite draws 20 Parquet and 40 CSV
# examples; `make fuzz` (LOANSTRESS_FUZZ_EXAMPLES=400) draws twenty times as many.
FUZZ_EXAMPLES = int(os.environ.get("LOANSTRESS_FUZZ_EXAMPLES", "20"))
FUZZ = hypothesis_settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                           phases=[Phase.explicit, Phase.reuse, Phase.generate])


# CSV examples often stop early at the header and cost no GX run: cheaper, so more of them.
@hypothesis_settings(FUZZ, max_examples=2 * FUZZ_EXAMPLES)
@given(copies=st.integers(1, 40), edits=cell_edits, layout=csv_layout,
       byte_edits=st.lists(byte_edit, max_size=3))
def test_mangled_csv_never_crashes_and_never_loses_rows(valid_tape_rows_factory, copies, edits, layout,
                                                        byte_edits) -> None:
    data = csv_tape(tape_rows(valid_tape_rows_factory, copies, edits), layout, byte_edits)
    ingest_and_validate(data, ".csv", csv_record_count(data))


@FUZZ
@given(copies=st.integers(1, 40), raw_values=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(COLUMN_NAMES),
                                                                st.binary(max_size=8)), max_size=4),
       extra=st.sampled_from(["none", "nested", "duplicate", "typed"]))
def test_mangled_parquet_never_crashes_and_never_loses_rows(valid_tape_rows_factory, copies, raw_values,
                                                            extra) -> None:
    rows = tape_rows(valid_tape_rows_factory, copies, [])
    ingest_and_validate(parquet_tape(rows, raw_values, extra), ".parquet", len(rows))
