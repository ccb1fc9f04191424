"""Ingestion and validation: bad input is quarantined with the rule it broke, never crashes, never loses rows.

Every row-level fault is one case in a single large tape (one Great Expectations run for all of them,
which keeps the suite fast); each case checks its own rows: they are all accounted for (accepted +
quarantined == the case's input rows) and the quarantine reason names the rule. Table-level faults
raise :class:`TableContractError`.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pipelines.data.contract import ARROW_SCHEMA, COLUMN_NAMES, FIELD_BY_NAME, render_markdown
from pipelines.data.ingestion import TableContractError, ingest
from pipelines.data.validation import SUITE_PATH, ValidationOutcome, build_suite_dict, validate
from pipelines.settings import REPO_ROOT

DUPLICATE_TOLERANCE = 0.01  # the StressSettings defaults
BALANCE_TOLERANCE = 0.05
EXTRA_COLUMN = "BranchCode"
HEADER = (*COLUMN_NAMES, EXTRA_COLUMN)
CLONES = 7  # copies of the 28 valid loans: > 200 rows, so one duplicated pair (2 rows) is within 1 %


def run_validation(tape, **overrides: Any) -> ValidationOutcome:
    options = {"duplicate_tolerance": DUPLICATE_TOLERANCE, "balance_tolerance": BALANCE_TOLERANCE, **overrides}
    return validate(tape, **options)


def template(rows: list[dict[str, str]], loan_id: str) -> dict[str, str]:
    return dict(next(row for row in rows if row["LoanId"] == loan_id))


def cells_of(row: dict[str, Any], extra: bytes = b"BR-01") -> list[bytes]:
    """The CSV cells of a loan (values may be str or raw bytes), with the extra column appended."""
    cells = [value if isinstance(value, bytes) else value.encode() for value in (row[c] for c in COLUMN_NAMES)]
    return [*cells, extra]


def csv_bytes(lines: list[bytes], header: tuple[str, ...] = HEADER) -> bytes:
    return b"\n".join([",".join(header).encode(), *lines]) + b"\n"


def quarantine_by_row(outcome: ValidationOutcome) -> dict[int, dict[str, Any]]:
    return {row["row_number"]: row for row in outcome.quarantine.to_pylist()}


def assert_nothing_lost(outcome: ValidationOutcome, input_rows: int) -> None:
    assert outcome.input_rows == input_rows
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == input_rows
    numbers = outcome.quarantine.column("row_number").to_pylist()
    assert len(numbers) == len(set(numbers)), "a row was quarantined twice"


# --------------------------------------------------------------------------------------------------
# Row-level faults: one case each, all in one tape
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    rule: str | None  # None: the case's rows must all be accepted


CASES = (
    Case("too_few_fields", "malformed_line:5_fields_expected_21"),
    Case("too_many_fields", "malformed_line:23_fields_expected_21"),
    Case("text_in_loan_amount", "type:LoanAmount"),
    Case("impossible_date_2021_02_30", "type:LoanStartDate"),
    Case("inverted_dates", "start_before_maturity"),
    Case("equal_start_and_maturity", "start_before_maturity"),
    Case("negative_amount", "range:LoanAmount"),
    Case("absurd_amount", "range:LoanAmount"),
    Case("balance_beyond_tolerance", "balance_within_amount"),
    Case("balance_within_tolerance", None),
    Case("balance_exactly_at_tolerance", None),
    Case("balance_half_a_cent_beyond_tolerance", "balance_within_amount"),
    Case("variable_rate_without_index", "variable_rate_terms"),
    Case("fixed_rate_with_margin", "variable_rate_terms"),
    Case("secured_without_collateral", "secured_has_collateral"),
    Case("unsecured_with_collateral", None),
    Case("non_utf8_cell", "type:LoanType"),
    Case("duplicate_id_within_tolerance", "duplicate_LoanId"),
    Case("padded_cells", None),
)


def build_case_lines(rows: list[dict[str, str]]) -> dict[str, list[bytes]]:
    fixed_mortgage = template(rows, "M-0001")  # fixed rate, secured
    variable_mortgage = template(rows, "M-0003")  # variable rate, secured

    def variant(base: dict[str, str], loan_id: str, **changes: str | bytes) -> list[bytes]:
        return cells_of({**base, "LoanId": loan_id, **changes})

    line = b",".join
    return {
        "too_few_fields": [line(variant(fixed_mortgage, "SHORT-1")[:5])],
        "too_many_fields": [line([*variant(fixed_mortgage, "LONG-1"), b"surplus", b"more"])],
        "text_in_loan_amount": [line(variant(fixed_mortgage, "TYPE-1", LoanAmount="twelve thousand"))],
        "impossible_date_2021_02_30": [line(variant(fixed_mortgage, "DATE-1", LoanStartDate="2021-02-30"))],
        "inverted_dates": [line(variant(fixed_mortgage, "INV-1", LoanStartDate="2030-06-01",
                                        LoanMaturityDate="2020-06-01"))],
        "equal_start_and_maturity": [line(variant(fixed_mortgage, "INV-2", LoanStartDate="2021-06-01",
                                                  LoanMaturityDate="2021-06-01"))],
        "negative_amount": [line(variant(fixed_mortgage, "NEG-1", LoanAmount="-5000.00", CurrentBalance="0.00"))],
        "absurd_amount": [line(variant(fixed_mortgage, "BIG-1", LoanAmount="50000000000.00"))],
        "balance_beyond_tolerance": [line(variant(fixed_mortgage, "BAL-1", LoanAmount="10000.00",
                                                  CurrentBalance="10600.00"))],
        "balance_within_tolerance": [line(variant(fixed_mortgage, "BAL-2", LoanAmount="10000.00",
                                                  CurrentBalance="10400.00"))],
        # 12233.97 == 11651.40 x 1.05 exactly: "CurrentBalance <= LoanAmount x (1 + tolerance)" holds.
        "balance_exactly_at_tolerance": [line(variant(fixed_mortgage, "BAL-3", LoanAmount="11651.40",
                                                      CurrentBalance="12233.97"))],
        # 10000.11 x 1.05 = 10500.1155 < 10500.12: over the limit by less than a cent.
        "balance_half_a_cent_beyond_tolerance": [line(variant(fixed_mortgage, "BAL-4", LoanAmount="10000.11",
                                                              CurrentBalance="10500.12"))],
        "variable_rate_without_index": [line(variant(variable_mortgage, "VAR-1", ReferenceIndex=""))],
        "fixed_rate_with_margin": [line(variant(fixed_mortgage, "VAR-2", RateMargin="0.0100"))],
        "secured_without_collateral": [line(variant(fixed_mortgage, "SEC-1", CollateralValue=""))],
        "unsecured_with_collateral": [line(variant(template(rows, "P-0001"), "SEC-2", CollateralValue="5000.00"))],
        "non_utf8_cell": [line(variant(fixed_mortgage, "BYTES-1", LoanType=b"MORTGAGE_\xff\xfe30Y"))],
        "duplicate_id_within_tolerance": [line(variant(fixed_mortgage, "DUP-1")),
                                          line(variant(variable_mortgage, "DUP-1"))],
        "padded_cells": [line(variant(fixed_mortgage, "PAD-1", LoanAmount="  350000.00 ", Region=" northeast"))],
    }


@dataclass
class CombinedRun:
    lines: list[bytes]
    case_rows: dict[str, list[int]]  # case name -> its row numbers (1-based, header excluded)
    loan_ids: dict[int, str]  # row number -> LoanId as written
    tape: Any
    outcome: ValidationOutcome


@pytest.fixture(scope="module")
def combined(tmp_path_factory, valid_tape_rows_factory) -> CombinedRun:
    rows = valid_tape_rows_factory()
    lines: list[bytes] = []
    loan_ids: dict[int, str] = {}
    case_rows: dict[str, list[int]] = {"valid": []}
    for clone in range(CLONES):
        for row in rows:
            loan_id = f"{row['LoanId']}-{clone}"
            lines.append(b",".join(cells_of({**row, "LoanId": loan_id})))
            case_rows["valid"].append(len(lines))
            loan_ids[len(lines)] = loan_id
    for name, case_lines in build_case_lines(rows).items():
        case_rows[name] = []
        for case_line in case_lines:
            lines.append(case_line)
            case_rows[name].append(len(lines))
            loan_ids[len(lines)] = case_line.split(b",", 1)[0].decode()
    path = tmp_path_factory.mktemp("combined") / "tape.csv"
    path.write_bytes(csv_bytes(lines))
    tape = ingest(str(path))
    return CombinedRun(lines, case_rows, loan_ids, tape, run_validation(tape))


CASE_PARAMS = [pytest.param(case, id=case.name) for case in CASES]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_each_fault_is_accounted_for_and_names_its_rule(combined: CombinedRun, case: Case) -> None:
    numbers = combined.case_rows[case.name]
    quarantined = quarantine_by_row(combined.outcome)
    accepted_ids = combined.outcome.accepted.column("LoanId").to_pylist()
    in_quarantine = [n for n in numbers if n in quarantined]
    in_accepted = [n for n in numbers if combined.loan_ids[n] in accepted_ids]
    assert len(in_quarantine) + len(in_accepted) == len(numbers), "rows of this case were lost or doubled"
    assert_nothing_lost(combined.outcome, len(combined.lines))
    if case.rule is None:
        assert in_accepted == numbers, {n: quarantined[n]["reasons"] for n in in_quarantine}
    else:
        assert in_quarantine == numbers
        for number in numbers:
            assert case.rule in quarantined[number]["reasons"].split("; "), quarantined[number]


def test_every_valid_row_is_accepted_exactly_once(combined: CombinedRun) -> None:
    accepted_ids = combined.outcome.accepted.column("LoanId").to_pylist()
    assert len(accepted_ids) == len(set(accepted_ids))
    expected = {combined.loan_ids[n] for c in ["valid", *(c.name for c in CASES if c.rule is None)]
                for n in combined.case_rows[c]}
    assert set(accepted_ids) == expected


def test_accepted_table_has_exactly_the_contract_schema(combined: CombinedRun) -> None:
    assert combined.outcome.accepted.schema.remove_metadata() == ARROW_SCHEMA
    padded = next(r for r in combined.outcome.accepted.to_pylist() if r["LoanId"] == "PAD-1")
    assert padded["LoanAmount"] == Decimal("350000.00")
    assert padded["Region"] == "northeast"


def test_unknown_columns_are_ignored_and_listed(combined: CombinedRun) -> None:
    assert combined.tape.extra_columns == [EXTRA_COLUMN]
    assert EXTRA_COLUMN not in combined.outcome.accepted.column_names


def test_malformed_lines_keep_their_text(combined: CombinedRun) -> None:
    quarantined = quarantine_by_row(combined.outcome)
    for name in ("too_few_fields", "too_many_fields"):
        (number,) = combined.case_rows[name]
        record = json.loads(quarantined[number]["raw_record"])
        assert record == {"line": combined.lines[number - 1].decode()}


def test_non_utf8_cell_is_quarantined_with_its_raw_record(combined: CombinedRun) -> None:
    (number,) = combined.case_rows["non_utf8_cell"]
    record = json.loads(quarantine_by_row(combined.outcome)[number]["raw_record"])
    assert record["LoanId"] == "BYTES-1"
    assert record["LoanType"] == "MORTGAGE_\\xff\\xfe30Y"  # undecodable bytes shown escaped, not dropped
    assert record["LoanAmount"] == "350000.00"
    assert record[EXTRA_COLUMN] == "BR-01"


def test_type_error_is_not_reported_twice_as_not_null(combined: CombinedRun) -> None:
    (number,) = combined.case_rows["text_in_loan_amount"]
    assert quarantine_by_row(combined.outcome)[number]["reasons"] == "type:LoanAmount"


def test_failed_expectations_count_the_broken_rules(combined: CombinedRun) -> None:
    failed = combined.outcome.failed_expectations
    assert failed["start_before_maturity"] == 2
    assert failed["secured_has_collateral"] == 1
    assert failed["range:LoanAmount"] == 2


def test_gx_checks_every_row_and_lists_the_unexpected_ones_by_row_number(combined: CombinedRun) -> None:
    """The quarantine comes from GX's own unexpected_index_list: every row evaluated, labelled by row number."""
    from pipelines.data.gx import run_gx_suite
    from pipelines.data.validation import _validation_frame

    frame = _validation_frame(combined.tape.table, BALANCE_TOLERANCE)
    results = run_gx_suite(frame, build_suite_dict())
    row_numbers = set(combined.tape.table.column("row_number").to_pylist())
    assert row_numbers == set(frame.index)
    conditions = {(e["type"], e["kwargs"].get("column")): e["kwargs"].get("row_condition")
                  for e in build_suite_dict()["expectations"]}
    assert len(conditions) == len(results)  # (type, column) names each expectation once
    for result in results:
        config, detail = result["expectation_config"], result["result"]
        if "unexpected_index_list" not in detail:  # table expectations
            continue
        condition = conditions[config["type"], config["kwargs"].get("column")]
        rows_in_domain = len(frame.query(condition)) if condition else len(frame)
        assert detail["element_count"] == rows_in_domain, config
        assert set(detail["unexpected_index_list"]) <= row_numbers, config
    (inverted,) = combined.case_rows["inverted_dates"]
    (pair,) = [r for r in results if r["expectation_config"]["meta"]["rule"] == "start_before_maturity"]
    assert inverted in pair["result"]["unexpected_index_list"]


def test_validation_reports_seconds_per_sub_step(combined: CombinedRun) -> None:
    timings: dict[str, float] = {}
    run_validation(combined.tape, timings=timings)
    assert set(timings) == {"gx_import", "validation_frame", "gx_checkpoint_and_data_docs", "quarantine"}
    assert all(seconds >= 0 for seconds in timings.values())


# --------------------------------------------------------------------------------------------------
# Table-level faults: the run stops with a TableContractError that says why
# --------------------------------------------------------------------------------------------------

def test_missing_columns_name_the_expectation_and_the_columns(tmp_path: Path, valid_tape_rows) -> None:
    header = tuple("region" if c == "Region" else c for c in COLUMN_NAMES if c != "CurrentBalance")
    rows = [{("region" if k == "Region" else k): v for k, v in r.items() if k != "CurrentBalance"}
            for r in valid_tape_rows]
    path = tmp_path / "tape.csv"
    path.write_bytes(csv_bytes([",".join(r[c] for c in header).encode() for r in rows], header))
    with pytest.raises(TableContractError) as error:
        ingest(str(path))
    message = str(error.value)
    assert "expect_table_columns_to_match_set" in message
    assert "CurrentBalance" in message
    assert "Region (found 'region'?)" in message


@pytest.mark.parametrize("content", [b"", b"  \n\n", b"\xef\xbb\xbf"], ids=["empty", "blank_lines", "only_bom"])
def test_empty_file_stops_the_run(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tape.csv"
    path.write_bytes(content)
    with pytest.raises(TableContractError, match=r"empty|no loans"):
        ingest(str(path))


def test_header_only_file_stops_the_run(tmp_path: Path) -> None:
    path = tmp_path / "tape.csv"
    path.write_bytes(",".join(COLUMN_NAMES).encode() + b"\n")
    with pytest.raises(TableContractError, match="expect_table_row_count_to_be_between"):
        ingest(str(path))


def test_header_only_file_without_trailing_newline_stops_the_run(tmp_path: Path) -> None:
    path = tmp_path / "tape.csv"
    path.write_bytes(",".join(COLUMN_NAMES).encode())
    with pytest.raises(TableContractError, match="expect_table_row_count_to_be_between"):
        ingest(str(path))


def test_missing_file_and_unknown_format_stop_the_run(tmp_path: Path) -> None:
    with pytest.raises(TableContractError, match="does not exist"):
        ingest(str(tmp_path / "nowhere.csv"))
    other = tmp_path / "tape.xlsx"
    other.write_bytes(b"whatever")
    with pytest.raises(TableContractError, match="cannot tell the format"):
        ingest(str(other))


def test_duplicates_beyond_tolerance_stop_the_run(tmp_path: Path, valid_tape_rows, write_csv) -> None:
    rows = [*valid_tape_rows, {**valid_tape_rows[3]}]  # 2 of 29 rows share an id: 6.9 % > 1 %
    with pytest.raises(TableContractError) as error:
        run_validation(ingest(str(write_csv(rows, tmp_path / "tape.csv"))))
    assert "expect_column_values_to_be_unique" in str(error.value)
    assert valid_tape_rows[3]["LoanId"] in str(error.value)


def test_tape_of_only_malformed_lines_stops_the_run(tmp_path: Path) -> None:
    path = tmp_path / "tape.csv"
    path.write_bytes(",".join(COLUMN_NAMES).encode() + b"\nnot,a,loan\nneither,is,this\n")
    tape = ingest(str(path))
    assert tape.input_rows == 2 and len(tape.malformed) == 2
    with pytest.raises(TableContractError, match="expect_table_row_count_to_be_between"):
        run_validation(tape)


# pyarrow reports the UnicodeDecodeError of its own invalid-row callback as "unraisable" before the
# ingestion falls back to the Python parser; that notice is expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_malformed_line_with_non_utf8_bytes_is_quarantined(tmp_path: Path, valid_tape_rows, write_csv) -> None:
    lines = [",".join(r[c] for c in COLUMN_NAMES).encode() for r in valid_tape_rows]
    lines.insert(5, b"BAD-\xe9,C-1,100.00")
    path = tmp_path / "tape.csv"
    path.write_bytes(csv_bytes(lines, COLUMN_NAMES))
    tape = ingest(str(path))
    assert tape.input_rows == len(lines)
    (malformed,) = tape.malformed
    assert (malformed.row_number, malformed.reason) == (6, "malformed_line:3_fields_expected_20")
    assert malformed.text == "BAD-\\xe9,C-1,100.00"  # the undecodable byte kept, escaped
    assert tape.type_errors == {}
    clean = ingest(str(write_csv(valid_tape_rows, tmp_path / "clean.csv"))).table
    assert tape.table.drop_columns(["row_number"]).equals(clean.drop_columns(["row_number"]))
    assert tape.table.column("row_number").to_pylist() == [n for n in range(1, len(lines) + 1) if n != 6]


@pytest.mark.parametrize("value", ["1e99", "9e20"])
def test_huge_scientific_decimal_is_a_type_error(tmp_path: Path, valid_tape_rows, write_csv, value: str) -> None:
    rows = [dict(r) for r in valid_tape_rows]
    rows[2]["LoanAmount"] = value
    tape = ingest(str(write_csv(rows, tmp_path / "tape.csv")))
    assert tape.type_errors == {3: ["type:LoanAmount"]}


def test_scientific_and_sub_cent_decimals_are_parsed_exactly(tmp_path: Path, valid_tape_rows, write_csv) -> None:
    rows = [dict(r) for r in valid_tape_rows]
    rows[0]["LoanAmount"], rows[1]["LoanAmount"] = "1.2345678E5", "123.455"
    rows[2]["LoanAmount"], rows[3]["DefaultRiskScore"] = "123.465", "1.1E-7"
    table = ingest(str(write_csv(rows, tmp_path / "tape.csv"))).table
    amounts = table.column("LoanAmount").to_pylist()
    assert amounts[:3] == [Decimal("123456.78"), Decimal("123.46"), Decimal("123.46")]  # half to even
    assert table.column("DefaultRiskScore")[3].as_py() == Decimal("0.00000011")


# --------------------------------------------------------------------------------------------------
# Every source gives the same accepted rows
# --------------------------------------------------------------------------------------------------

def mixed_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Valid loans plus rule-breaking ones whose every value still has the right type."""
    mortgage, variable = template(rows, "M-0001"), template(rows, "M-0003")
    bad = [
        {**mortgage, "LoanId": "X-1", "LoanStartDate": "2030-01-01", "LoanMaturityDate": "2020-01-01"},
        {**mortgage, "LoanId": "X-2", "LoanAmount": "-100.00", "CurrentBalance": "0.00"},
        {**mortgage, "LoanId": "X-3", "CurrentBalance": "999999.99"},
        {**variable, "LoanId": "X-4", "ReferenceIndex": ""},
        {**mortgage, "LoanId": "X-5", "CollateralValue": ""},
        {**mortgage, "LoanId": "X-6", "CreditScore": "900"},
        {**mortgage, "LoanId": "X-7", "Region": "mars"},
    ]
    return [*rows[:14], *bad, *rows[14:]]


def typed_value(name: str, text: str) -> Any:
    arrow_type = FIELD_BY_NAME[name].arrow_type
    if text == "":
        return None
    if pa.types.is_decimal(arrow_type):
        return Decimal(text)
    if pa.types.is_date(arrow_type):
        return date.fromisoformat(text)
    if pa.types.is_integer(arrow_type):
        return int(text)
    return text


@pytest.fixture(scope="module")
def csv_outcome(tmp_path_factory, valid_tape_rows_factory, write_csv) -> ValidationOutcome:
    rows = mixed_rows(valid_tape_rows_factory())
    return run_validation(ingest(str(write_csv(rows, tmp_path_factory.mktemp("csv") / "tape.csv"))))


def assert_same_outcome(outcome: ValidationOutcome, expected: ValidationOutcome) -> None:
    assert outcome.accepted.num_rows == 28
    assert outcome.accepted.equals(expected.accepted)
    assert (outcome.quarantine.select(["row_number", "reasons"])
            .equals(expected.quarantine.select(["row_number", "reasons"])))


def typed_table(rows: list[dict[str, str]]) -> pa.Table:
    schema = pa.schema([pa.field(f.name, f.type, nullable=True) for f in ARROW_SCHEMA])
    return pa.table({name: [typed_value(name, r[name]) for r in rows] for name in COLUMN_NAMES}, schema=schema)


def test_text_parquet_source_types_like_csv(tmp_path: Path, valid_tape_rows, write_csv) -> None:
    """A Parquet tape of string columns gives the very typed table (and faults) of the same CSV."""
    rows = mixed_rows(valid_tape_rows)
    rows[3] = {**rows[3], "LoanAmount": "twelve"}
    pq.write_table(pa.table({name: [r[name] or None for r in rows] for name in COLUMN_NAMES}),
                   tmp_path / "tape.parquet")
    from_parquet = ingest((tmp_path / "tape.parquet").as_uri())
    from_csv = ingest(str(write_csv(rows, tmp_path / "tape.csv")))
    assert from_parquet.table.equals(from_csv.table)
    assert from_parquet.type_errors == from_csv.type_errors == {4: ["type:LoanAmount"]}


def test_typed_parquet_source_matches_csv(tmp_path: Path, valid_tape_rows, csv_outcome) -> None:
    pq.write_table(typed_table(mixed_rows(valid_tape_rows)), tmp_path / "tape.parquet")
    tape = ingest(str(tmp_path / "tape.parquet"))
    assert tape.type_errors == {}  # H-0004 has RateMargin 0.0000 (written by Arrow as 0E-8)
    assert_same_outcome(run_validation(tape), csv_outcome)


def write_sqlite_tape(path: Path, rows: list[dict[str, str]], numeric_type: str = "TEXT") -> Path:
    def column_type(name: str) -> str:
        arrow_type = FIELD_BY_NAME[name].arrow_type
        if pa.types.is_integer(arrow_type):
            return "INTEGER"
        return numeric_type if pa.types.is_decimal(arrow_type) else "TEXT"

    with sqlite3.connect(path) as connection:
        columns = ", ".join(f'"{n}" {column_type(n)}' for n in COLUMN_NAMES)
        connection.execute(f"CREATE TABLE loans ({columns})")
        values = [[typed_value(n, r[n]) for n in COLUMN_NAMES] for r in rows]
        values = [[float(v) if isinstance(v, Decimal) and numeric_type == "REAL" else
                   str(v) if isinstance(v, Decimal | date) else v for v in row] for row in values]
        connection.executemany(f"INSERT INTO loans VALUES ({', '.join('?' for _ in COLUMN_NAMES)})", values)
    connection.close()
    return path


def test_sqlite_table_source_matches_csv(tmp_path: Path, valid_tape_rows, csv_outcome) -> None:
    path = write_sqlite_tape(tmp_path / "book.db", mixed_rows(valid_tape_rows))
    source = f"sqlite:///{path.resolve()}?table=loans"
    assert source.startswith("sqlite:////")
    assert_same_outcome(run_validation(ingest(source)), csv_outcome)


def test_sqlite_relative_path_source_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, valid_tape_rows,
                                            write_csv) -> None:
    write_sqlite_tape(tmp_path / "book.db", valid_tape_rows)
    monkeypatch.chdir(tmp_path)
    tape = ingest("sqlite:///book.db?table=loans")
    assert tape.type_errors == {}
    assert tape.table.equals(ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv"))).table)


def test_sqlite_real_columns_are_read_exactly(tmp_path: Path, valid_tape_rows,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [dict(r) for r in valid_tape_rows]
    rows[0]["DefaultRiskScore"] = "0.00005"
    write_sqlite_tape(tmp_path / "book.db", rows, numeric_type="REAL")
    monkeypatch.chdir(tmp_path)
    tape = ingest("sqlite:///book.db?table=loans")
    assert tape.type_errors == {}
    assert tape.table.column("DefaultRiskScore")[0].as_py() == Decimal("0.00005")


def test_sql_source_without_table_parameter_stops_the_run() -> None:
    with pytest.raises(TableContractError, match=r"\?table=NAME"):
        ingest("sqlite:///book.db")
    with pytest.raises(TableContractError, match="plain identifier"):
        ingest("sqlite:///book.db?table=loans;drop")


# --------------------------------------------------------------------------------------------------
# Publishing: exact decimals, idempotence, Data Docs
# --------------------------------------------------------------------------------------------------

PRECISION_ROW = {"LoanId": "Z-MAX", "LoanAmount": "9999999999.99", "CurrentBalance": "9999999999.99",
                 "InterestRate": "0.12345678", "DefaultRiskScore": "0.00000001", "BorrowerIncome": "0.01"}


@dataclass
class Published:
    settings: Any
    first: dict[str, Any]
    second: dict[str, Any]
    counts_after_first: tuple[int, int]
    direct_tape: Any
    staged_tape: Any
    input_rows: int


@pytest.fixture(scope="module")
def published(tmp_path_factory, make_settings, valid_tape_rows_factory, write_csv, publish_snapshot) -> Published:
    from pipelines.adapters.loan_store import LoanStore
    from pipelines.adapters.object_store import open_object_store
    from pipelines.data.snapshots import load_staged_tape, stage_tape

    root = tmp_path_factory.mktemp("publish")
    settings = make_settings(root / "home")
    rows = valid_tape_rows_factory()
    rows.append({**template(rows, "R-0002"), **PRECISION_ROW})
    rows.append({**template(rows, "M-0001"), "LoanId": "Q-1", "LoanAmount": "abc"})
    path = write_csv(rows, root / "tape.csv")
    with path.open("ab") as handle:
        handle.write(b"Q-2,too,few\n")
    staged = stage_tape(str(path), "manual__2025-12-31",
                       open_object_store(settings.resolved_object_store_uri), settings.aws_region,
                       loan_store=LoanStore(settings.resolved_loan_store_url))
    staged_tape = load_staged_tape(staged, open_object_store(settings.resolved_object_store_uri))
    first = publish_snapshot(staged_tape, date(2025, 12, 31), settings, airflow_run_id="manual__1")
    counts = LoanStore(settings.resolved_loan_store_url).count_rows(first["ingestion_id"])
    direct_tape = ingest(str(path))
    second = publish_snapshot(direct_tape, date(2025, 12, 31), settings, airflow_run_id="manual__2")
    return Published(settings, first, second, counts, direct_tape, staged_tape, len(rows) + 1)


def test_staging_round_trip_keeps_the_tape(published: Published) -> None:
    staged, direct = published.staged_tape, published.direct_tape
    assert staged.table.equals(direct.table)
    assert staged.raw_text.equals(direct.raw_text)
    assert staged.malformed == direct.malformed and len(direct.malformed) == 1
    assert staged.type_errors == direct.type_errors == {30: ["type:LoanAmount"]}


def test_publishing_the_same_tape_twice_is_idempotent(published: Published) -> None:
    from pipelines.adapters.loan_store import LoanStore

    first, second = published.first, published.second
    assert first["snapshot_id"] == second["snapshot_id"]
    assert first["content_sha256"] == second["content_sha256"]
    store = LoanStore(published.settings.resolved_loan_store_url)
    counts = store.count_rows(second["ingestion_id"])
    assert counts == published.counts_after_first == (29, 2)
    with store.engine.connect() as connection:
        totals = [connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in (store.loans, store.snapshots, store.ingestions, store.quarantine)]
    # One shared snapshot; each ingestion keeps its own record and quarantine.
    assert totals == [29, 1, 2, 4]
    assert first["ingestion_id"] != second["ingestion_id"]
    assert store.ingestion(first["ingestion_id"])["airflow_run_id"] == "manual__1"
    assert store.ingestion(second["ingestion_id"])["airflow_run_id"] == "manual__2"


def test_manifest_accounts_for_every_row(published: Published) -> None:
    manifest = published.second
    assert manifest["input_rows"] == published.input_rows == 31
    assert manifest["accepted_rows"] + manifest["quarantined_rows"] == manifest["input_rows"]
    assert manifest["quarantine_reasons"] == {"type:LoanAmount": 1, "malformed_line:3_fields_expected_20": 1}
    assert manifest["as_of"] == "2025-12-31"


def test_decimals_are_exact_from_csv_through_parquet_to_the_loan_store(published: Published) -> None:
    from pipelines.adapters.loan_store import LoanStore
    from pipelines.adapters.object_store import open_object_store

    snapshot_id = published.second["snapshot_id"]
    objects = open_object_store(published.settings.resolved_object_store_uri)
    parquet = objects.get_parquet(f"snapshots/{snapshot_id}/loans.parquet")
    assert parquet.schema.field("LoanAmount").type == pa.decimal128(18, 2)
    stored = LoanStore(published.settings.resolved_loan_store_url).read_snapshot(snapshot_id)
    for table in (parquet, stored):
        by_id = {r["LoanId"]: r for r in table.to_pylist()}
        assert by_id["M-0002"]["LoanAmount"] == Decimal("123456.78")
        assert str(by_id["M-0002"]["LoanAmount"]) == "123456.78"
        assert by_id["Z-MAX"]["LoanAmount"] == Decimal("9999999999.99")
        assert by_id["Z-MAX"]["InterestRate"] == Decimal("0.12345678")
        assert by_id["Z-MAX"]["DefaultRiskScore"] == Decimal("0.00000001")
    assert stored.equals(parquet.sort_by("LoanId"))


def test_data_docs_index_is_produced(published: Published) -> None:
    from pipelines.adapters.object_store import open_object_store

    ingestion_id = published.second["ingestion_id"]
    objects = open_object_store(published.settings.resolved_object_store_uri)
    key = f"ingestions/{ingestion_id}/data_docs/index.html"
    assert objects.exists(key)
    assert published.second["data_docs_uri"] == objects.uri(key)
    assert "loan_tape" in objects.get_bytes(key).decode()
    assert (published.settings.data_home / "tmp" / "manual__2" / "data_docs" / "index.html").is_file()


def test_content_hash_follows_the_data() -> None:
    from pipelines.data.hashing import content_hash

    table = pa.table({"LoanAmount": pa.array([Decimal("1.00"), Decimal("2.00")], pa.decimal128(18, 2))})
    same = pa.table({"LoanAmount": pa.array([Decimal("1.00"), Decimal("2.00")], pa.decimal128(18, 2))})
    cent_off = pa.table({"LoanAmount": pa.array([Decimal("1.00"), Decimal("2.01")], pa.decimal128(18, 2))})
    assert content_hash(table) == content_hash(same)
    assert content_hash(table) != content_hash(cent_off)


# --------------------------------------------------------------------------------------------------
# The suite and the documentation cannot drift from the contract
# --------------------------------------------------------------------------------------------------

def test_suite_file_equals_the_contract() -> None:
    assert json.loads(SUITE_PATH.read_text()) == build_suite_dict()


def test_contract_document_equals_the_contract() -> None:
    assert (REPO_ROOT / "docs" / "loan_contract.md").read_text() == render_markdown()


def test_suite_checks_every_contract_column() -> None:
    checked = {e["kwargs"].get("column") for e in build_suite_dict()["expectations"]}
    assert set(COLUMN_NAMES) <= checked


# --------------------------------------------------------------------------------------------------
# Property: random mixes of valid and corrupted rows
# --------------------------------------------------------------------------------------------------

# Values that break a row whatever its other values are ({i} becomes the row number, keeping ids unique).
CORRUPTIONS: dict[str, tuple[bytes, ...]] = {
    "LoanId": (b"", b"L" * 64 + b"-{i}"),
    "CustomerId": (b"", b"C" * 65),
    "LoanAmount": (b"lots", b"-10.00", b"50000000000.00", b"", b"1.2.3", b"1e5.0", b"0.001"),
    "InterestRate": (b"0.55", b"-0.01", b"6.5%", b""),
    "LoanStartDate": (b"2021-02-30", b"2021/01/01", b"", b"9999-99-99"),
    "LoanMaturityDate": (b"1900-01-01", b"2021-13-01", b""),
    "LoanType": (b"", b"T" * 65, b"\xff\xfe"),
    "RepaymentSchedule": (b"monthly", b"", b"ANNUITY"),
    "CurrentBalance": (b"-1.00", b"x", b"", b"99999999999.00"),
    "DefaultRiskScore": (b"1.5", b"-0.1", b"", b"p"),
    "RateType": (b"floating", b"", b"Fixed"),
    "ReferenceIndex": (b"libor", b"\xc3\x28"),
    "RateMargin": (b"0.5", b"abc"),
    "BorrowerIncome": (b"-5.00", b"", b"rich"),
    "CreditScore": (b"299", b"851", b"7.5", b"", b"99999"),
    "CollateralValue": (b"0.00", b"abc", b"-1.00"),
    "Region": (b"mars", b"", b"North East"),
    "ProductSegment": (b"student_loan", b""),
    "DaysPastDue": (b"-1", b"3651", b"1.5", b""),
}

cell_corruption = st.sampled_from(sorted(CORRUPTIONS)).flatmap(
    lambda column: st.tuples(st.just(column), st.sampled_from(CORRUPTIONS[column])))
FAULT_BUILDERS = {
    "ok": st.none(),
    "cells": st.lists(cell_corruption, min_size=1, max_size=2, unique_by=lambda c: c[0]).map(
        lambda cs: ("cells", cs)),
    "truncate": st.integers(1, len(COLUMN_NAMES) - 1).map(lambda k: ("truncate", k)),
    "extend": st.integers(1, 3).map(lambda k: ("extend", k)),
}
# Cell faults weighted up: they exercise the GX rules, while line faults only exercise the CSV parser.
row_fault = st.sampled_from(["ok", "ok", "cells", "cells", "cells", "truncate", "extend"]).flatmap(
    FAULT_BUILDERS.__getitem__)
tape_spec = st.lists(st.tuples(st.integers(0, 27), row_fault), min_size=20, max_size=60)


# Few examples of up to 60 rows each (every example is a GX run); no shrinking, which would re-run GX
# hundreds of times: a failure names the offending LoanIds / row numbers instead.
@hypothesis_settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                     phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(spec=tape_spec)
def test_random_corruption_never_loses_rows_nor_accepts_a_corrupted_one(valid_tape_rows_factory, spec) -> None:
    assume(any(fault is None or fault[0] == "cells" for _, fault in spec))
    rows = valid_tape_rows_factory()
    lines, clean_ids, corrupted_numbers = [], set(), set()
    for number, (index, fault) in enumerate(spec, start=1):
        row: dict[str, Any] = {**rows[index], "LoanId": f"{rows[index]['LoanId']}-{number}"}
        if fault is None:
            clean_ids.add(row["LoanId"])
        else:
            corrupted_numbers.add(number)
        if fault and fault[0] == "cells":
            row.update({column: value.replace(b"{i}", str(number).encode()) for column, value in fault[1]})
        cells = cells_of(row)[:-1]
        if fault and fault[0] == "truncate":
            cells = cells[:fault[1]]
        elif fault and fault[0] == "extend":
            cells += [b"extra"] * fault[1]
        lines.append(b",".join(cells))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tape.csv"
        path.write_bytes(csv_bytes(lines, COLUMN_NAMES))
        outcome = run_validation(ingest(str(path)))
    assert_nothing_lost(outcome, len(spec))
    accepted_ids = set(outcome.accepted.column("LoanId").to_pylist())
    assert accepted_ids <= clean_ids, f"corrupted rows accepted: {accepted_ids - clean_ids}"
    assert accepted_ids == clean_ids, f"valid rows quarantined: {clean_ids - accepted_ids}"
    assert set(outcome.quarantine.column("row_number").to_pylist()) == corrupted_numbers


def test_an_optional_column_may_be_absent_or_given(tmp_path: Path, valid_tape_rows, write_csv) -> None:
    without = [{k: v for k, v in row.items() if k != "SeniorLienBalance"} for row in valid_tape_rows]
    accepted = run_validation(ingest(str(write_csv(without, tmp_path / "without.csv")))).accepted
    assert accepted.num_rows == len(valid_tape_rows)
    assert accepted.column("SeniorLienBalance").null_count == accepted.num_rows

    with_lien = [{**row, "SeniorLienBalance": "250000.00" if row["LoanId"] == "H-0001" else ""}
                 for row in valid_tape_rows]
    accepted = run_validation(ingest(str(write_csv(with_lien, tmp_path / "with.csv")))).accepted
    liens = dict(zip(accepted.column("LoanId").to_pylist(), accepted.column("SeniorLienBalance").to_pylist(),
                     strict=True))
    assert liens["H-0001"] == Decimal("250000.00")
    assert sum(value is not None for value in liens.values()) == 1
