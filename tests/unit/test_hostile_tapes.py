"""Hostile loan tapes: each one used to crash ingestion with a traceback; now it is a clear table error
naming the column, file or server, or the bad cell costs its own row only.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.data import ingestion
from pipelines.data.contract import COLUMN_NAMES
from pipelines.data.ingestion import TableContractError, ingest
from pipelines.data.validation import ValidationOutcome, validate


def run_validation(tape) -> ValidationOutcome:
    return validate(tape, duplicate_tolerance=0.01, balance_tolerance=0.05)


def text_table(rows: list[dict[str, str]], columns: list[str] | None = None) -> pa.Table:
    """The rows as a Parquet-ready table of string columns (empty cells as nulls)."""
    names = columns or list(COLUMN_NAMES)
    return pa.table({name: pa.array([row[name] or None for row in rows], pa.string()) for name in names})


def quarantine_reasons(outcome: ValidationOutcome) -> dict[int, str]:
    return dict(zip(outcome.quarantine.column("row_number").to_pylist(),
                    outcome.quarantine.column("reasons").to_pylist(), strict=True))


# 1. Duplicated column names -------------------------------------------------------------------------

def test_duplicated_csv_column_is_a_table_error_naming_it(tmp_path: Path, valid_tape_rows) -> None:
    lines = [",".join([*COLUMN_NAMES, "LoanAmount", "Region"])]
    lines += [",".join([*row.values(), "1.00", "west"]) for row in valid_tape_rows]
    path = tmp_path / "tape.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableContractError, match=r"more than once: LoanAmount, Region$"):
        ingest(str(path))


def test_duplicated_parquet_column_is_a_table_error_naming_it(tmp_path: Path, valid_tape_rows) -> None:
    table = text_table(valid_tape_rows)
    table = table.append_column("LoanAmount", table.column("LoanAmount"))
    pq.write_table(table, tmp_path / "tape.parquet")
    with pytest.raises(TableContractError, match=r"more than once: LoanAmount$"):
        ingest(str(tmp_path / "tape.parquet"))


# 2. Decimals beyond Python's default 28-digit context -----------------------------------------------

@pytest.mark.parametrize("huge_or_tiny", ["1e25", "1e-20"])
def test_out_of_range_decimal_next_to_an_11_digit_amount_costs_its_row(tmp_path: Path, valid_tape_rows, write_csv,
                                                                       huge_or_tiny: str) -> None:
    valid_tape_rows[0]["LoanAmount"] = huge_or_tiny
    valid_tape_rows[1]["LoanAmount"] = "10000000000.00"  # 11 digits, the contract's maximum
    tape = ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv")))
    outcome = run_validation(tape)
    # 1e25 does not fit the wide decimal (a type error); 1e-20 rounds to 0.00 like any sub-cent value,
    # below the contract's minimum amount.
    expected = {"1e25": "type:LoanAmount", "1e-20": "range:LoanAmount"}[huge_or_tiny]
    reasons = quarantine_reasons(outcome)
    assert list(reasons) == [1] and expected in reasons[1].split("; ")
    assert outcome.accepted.num_rows == len(valid_tape_rows) - 1
    amounts = dict(zip(outcome.accepted.column("LoanId").to_pylist(),
                       outcome.accepted.column("LoanAmount").to_pylist(), strict=True))
    assert str(amounts["M-0002"]) == "10000000000.00"


def test_decimal_with_more_than_18_places_is_rounded_once(tmp_path: Path, valid_tape_rows, write_csv) -> None:
    # 0.0149999999999999999 (19 places) rounded to 18 places first would become 0.015 and then 0.02.
    valid_tape_rows[0]["CurrentBalance"] = "1.49999999999999999e-2"
    valid_tape_rows[1]["CurrentBalance"] = "10000000000.00"
    tape = ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv")))
    assert [str(v) for v in tape.table.column("CurrentBalance").to_pylist()[:2]] == ["0.01", "10000000000.00"]


# 3. Unreadable sources --------------------------------------------------------------------------------

def test_directory_as_source_is_a_table_error(tmp_path: Path) -> None:
    folder = tmp_path / "tape.csv"
    folder.mkdir()
    with pytest.raises(TableContractError, match=r"cannot read loan tape '.*tape\.csv': Is a directory"):
        ingest(str(folder))


def test_permission_denied_is_a_table_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, which reads any file: the adapter's error is simulated.
    from pipelines.adapters import object_store

    def denied(uri: str, region: str = "us-east-1", setting: str = "", http: object = None) -> bytes:
        raise PermissionError(13, "Permission denied", uri)

    monkeypatch.setattr(object_store, "read_uri_bytes", denied)
    with pytest.raises(TableContractError, match=r"cannot read loan tape '.*tape\.csv': Permission denied"):
        ingest(str(tmp_path / "tape.csv"))


def test_unreachable_database_names_the_server_but_not_the_password() -> None:
    with pytest.raises(TableContractError, match=r"PostgreSQL at 127\.0\.0\.1:1/loans: .*refused") as caught:
        ingest("postgresql://analyst:s3cret-pw@127.0.0.1:1/loans?table=loan_tape")
    assert "s3cret-pw" not in str(caught.value)


def test_sqlite_source_that_is_not_a_database_is_a_table_error(tmp_path: Path) -> None:
    path = tmp_path / "book.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(TableContractError, match=r"cannot read table 'loans' from .*book\.db: file is not a database"):
        ingest(f"sqlite:///{path}?table=loans")


# 4. Nested Parquet columns ----------------------------------------------------------------------------

def test_nested_extra_parquet_columns_are_ignored_and_listed(tmp_path: Path, valid_tape_rows) -> None:
    table = text_table(valid_tape_rows)
    n = table.num_rows
    table = (table.append_column("Tags", pa.array([["a", "b"]] * n))
             .append_column("Address", pa.array([{"zip": "10001"}] * n))
             .append_column("Attributes", pa.array([[("k", 1)]] * n, pa.map_(pa.string(), pa.int64()))))
    pq.write_table(table, tmp_path / "tape.parquet")
    tape = ingest(str(tmp_path / "tape.parquet"))
    assert tape.extra_columns == ["Address", "Attributes", "Tags"]
    assert run_validation(tape).accepted.num_rows == n


def test_nested_contract_parquet_column_is_a_table_error_naming_it(tmp_path: Path, valid_tape_rows) -> None:
    table = text_table(valid_tape_rows)
    index = table.column_names.index("Region")
    table = table.set_column(index, "Region", pa.array([[row["Region"]] for row in valid_tape_rows]))
    pq.write_table(table, tmp_path / "tape.parquet")
    with pytest.raises(TableContractError, match=r"Region \(list<element: string>\)"):
        ingest(str(tmp_path / "tape.parquet"))


# 5. Table names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["1", "loans;drop", "a.b.c", "2loans", "loan tape"])
def test_table_name_that_is_not_an_identifier_is_refused(name: str) -> None:
    with pytest.raises(TableContractError, match="is not a plain identifier"):
        ingest(f"postgresql://postgres@127.0.0.1:1/test?table={name}")


def test_numeric_postgres_table_name_is_refused_before_the_query(postgres_url: str) -> None:
    # PostgreSQL reads '1'::regclass as object id 1: no row came back and unpacking it raised TypeError.
    with pytest.raises(TableContractError, match="'1' is not a plain identifier"):
        ingest(f"{postgres_url}?table=1")


# 6. A leading plus sign -------------------------------------------------------------------------------

def test_plus_signed_integer_is_parsed_like_decimals(tmp_path: Path, valid_tape_rows, write_csv) -> None:
    valid_tape_rows[0]["DaysPastDue"] = "+5"
    valid_tape_rows[1]["CreditScore"] = "+700"
    valid_tape_rows[2]["LoanAmount"] = "+512000.00"
    outcome = run_validation(ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv"))))
    assert outcome.quarantine.num_rows == 0
    first = outcome.accepted.slice(0, 3).to_pydict()
    assert (first["DaysPastDue"][0], first["CreditScore"][1], str(first["LoanAmount"][2])) == (5, 700, "512000.00")


# 7. Invalid UTF-8 in Parquet --------------------------------------------------------------------------

@pytest.mark.parametrize("column_type", [pa.binary(), pa.string(), pa.large_string()])
def test_invalid_utf8_parquet_cell_costs_its_row(tmp_path: Path, valid_tape_rows, column_type) -> None:
    table = text_table(valid_tape_rows)
    regions = [row["Region"].encode() for row in valid_tape_rows]
    regions[2] = b"we\xffst"
    column = pa.array(regions, pa.binary())
    column = column.view(column_type) if column_type != pa.large_string() else column.cast(pa.large_binary()).view(
        pa.large_string())
    table = table.set_column(table.column_names.index("Region"), "Region", column)
    pq.write_table(table, tmp_path / "tape.parquet")
    outcome = run_validation(ingest(str(tmp_path / "tape.parquet")))
    assert quarantine_reasons(outcome) == {3: "type:Region"}
    assert outcome.accepted.num_rows == len(valid_tape_rows) - 1
    assert json.loads(outcome.quarantine.column("raw_record")[0].as_py())["Region"] == "we\\xffst"


# 8. CR-only line endings ------------------------------------------------------------------------------

def test_cr_only_line_endings_are_read(tmp_path: Path, valid_tape_rows) -> None:
    rows = [{**row, "LoanId": f"{row['LoanId']}-{copy}"} for copy in range(108) for row in valid_tape_rows][:3000]
    rows[1500]["CreditScore"] = "high"  # one bad cell: its row number must count CR-ended lines
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMN_NAMES), lineterminator="\r")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "mac.csv"
    path.write_text(buffer.getvalue())
    outcome = run_validation(ingest(str(path)))
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == 3000
    assert quarantine_reasons(outcome) == {1501: "type:CreditScore"}


def test_header_detection_follows_the_parser_line_endings() -> None:
    # One CR-terminated header and no loans is still "no loans", not a one-line header.
    with pytest.raises(TableContractError, match="header but no loans"):
        ingestion.read_csv_as_text((",".join(COLUMN_NAMES) + "\r\r").encode(), "mac.csv")


# A malformed non-UTF-8 line: only the non-UTF-8 lines go through Python's csv module -------------------

def test_non_utf8_lines_read_apart_match_the_whole_file_read_by_python(tmp_path: Path, valid_tape_rows,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [",".join(COLUMN_NAMES).encode()] + [",".join(row.values()).encode() for row in valid_tape_rows]
    lines[3] = b"X-1,\xff\xfe,too,few"  # malformed and not UTF-8: aborts Arrow's parser
    lines[1] = lines[1].replace(b"northeast", b"north\xe9ast")  # well-formed, one non-UTF-8 cell
    lines[12] = b"only,three,fields"  # malformed, UTF-8
    lines[21] = lines[21].replace(b",690,", b",high,")  # a type error
    path = tmp_path / "tape.csv"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    assert len(ingestion._non_utf8_lines(path.read_bytes())) == 2  # lines 1 and 3 are read apart
    apart = ingest(str(path))
    monkeypatch.setattr(ingestion, "_non_utf8_lines", lambda data: [])  # the whole file through Python
    whole = ingest(str(path))
    assert apart.raw_text.equals(whole.raw_text) and apart.table.equals(whole.table)
    assert apart.malformed == whole.malformed and apart.type_errors == whole.type_errors
    assert [m.row_number for m in apart.malformed] == [3, 12]
    assert apart.type_errors == {1: ["type:Region"], 21: ["type:CreditScore"]}


def test_a_tape_whose_only_non_utf8_line_is_malformed_reads_the_rest_in_contract_types(
        tmp_path: Path, valid_tape_rows, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [",".join(COLUMN_NAMES).encode()] + [",".join(row.values()).encode() for row in valid_tape_rows]
    lines[5] = b"X-1,\xff\xfe,too,few"  # malformed and not UTF-8: the other lines need no text pass
    path = tmp_path / "tape.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    apart = ingest(str(path))
    assert pa.types.is_decimal(apart.raw_text.schema.field("LoanAmount").type)  # parsed typed, not as bytes
    monkeypatch.setattr(ingestion, "_non_utf8_lines", lambda data: [])  # the whole file through Python
    whole = ingest(str(path))
    assert apart.table.equals(whole.table)
    assert apart.malformed == whole.malformed and [m.row_number for m in apart.malformed] == [5]
    assert apart.type_errors == whole.type_errors == {}
