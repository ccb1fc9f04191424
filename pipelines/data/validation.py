"""Validation of the typed loan tape with Great Expectations, and the quarantine of bad rows.

The suite lives in ``expectations/loan_tape.json`` and is generated from the contract in
``pipelines/data/contract.py`` (a test keeps the two equal). Each expectation carries ``meta.rule``
(the reason written on a quarantined row) and ``meta.level``: a failed ``row`` expectation
quarantines the rows GX lists as unexpected; a failed ``table`` expectation stops the run with a
:class:`TableContractError` that names the expectation and shows example values.

Invariant: input rows == accepted rows + quarantined rows, always.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.data.confusables import is_mixed_script, skeleton
from pipelines.data.contract import (
    ARROW_SCHEMA,
    COLUMN_NAMES,
    CONTROL_CHARACTERS_RULE,
    FIELDS,
    MIXED_SCRIPT_RULE,
    NUL_CHARACTER_RULE,
    SECURED_SEGMENTS,
)
from pipelines.data.gx import expectation, run_gx_suite
from pipelines.data.ingestion import ROW_NUMBER, TableContractError, TypedTape
from pipelines.settings import REPO_ROOT
from pipelines.timing import timed

SUITE_PATH = REPO_ROOT / "expectations" / "loan_tape.json"
SUITE_NAME = "loan_tape"
BALANCE_EXCESS = "BalanceExcessOverTolerance"
LOAN_ID_KEY = "LoanIdKey"  # the LoanId as the duplicate check compares it (see loan_id_key)
# Characters a LoanId may not contain (C0 and C1 controls, NUL included), and the one no text cell may:
# PostgreSQL text cannot hold NUL, and SQLite would keep it where no reader expects it.
_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f]"
_NUL = r"\x00"
# Invisible characters NFKC keeps: zero-width space / non-joiner / joiner, word joiner, BOM.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_PLAIN_ASCII = r"^[\x20-\x7e]*$"


def build_suite_dict() -> dict[str, Any]:
    """The loan tape suite as plain JSON, derived from the contract."""
    expectations: list[dict[str, Any]] = [
        expectation("expect_table_columns_to_match_set", "table", "required_columns",
                     column_set=list(COLUMN_NAMES), exact_match=False),
        expectation("expect_table_row_count_to_be_between", "table", "non_empty", min_value=1),
    ]
    for f in FIELDS:
        if not f.nullable:
            expectations.append(expectation("expect_column_values_to_not_be_null", "row", f"not_null:{f.name}",
                                             column=f.name))
        if f.allowed:
            expectations.append(expectation("expect_column_values_to_be_in_set", "row", f"allowed:{f.name}",
                                             column=f.name, value_set=list(f.allowed)))
        if f.minimum is not None or f.maximum is not None:
            expectations.append(expectation("expect_column_values_to_be_between", "row", f"range:{f.name}",
                                             column=f.name, min_value=f.minimum, max_value=f.maximum))
        if f.max_length:
            expectations.append(expectation("expect_column_value_lengths_to_be_between", "row", f"length:{f.name}",
                                             column=f.name, min_value=1, max_value=f.max_length))
    secured = sorted(s.value for s in SECURED_SEGMENTS)
    expectations += [
        expectation("expect_column_pair_values_a_to_be_greater_than_b", "row", "start_before_maturity",
                     column_A="LoanMaturityDate", column_B="LoanStartDate",
                     ignore_row_if="either_value_is_missing"),
        expectation("expect_column_values_to_be_between", "row", "balance_within_amount",
                     column=BALANCE_EXCESS, max_value=0),
        *[
            expectation(kind, "row", "variable_rate_terms", column=column,
                         row_condition=f'RateType=="{rate_type}"', condition_parser="pandas")
            for column in ("ReferenceIndex", "RateMargin")
            for kind, rate_type in (("expect_column_values_to_not_be_null", "variable"),
                                    ("expect_column_values_to_be_null", "fixed"))
        ],
        expectation("expect_column_values_to_not_be_null", "row", "secured_has_collateral",
                     # One text both parsers read: pandas' DataFrame.query and Spark SQL (the Spark ETL).
                     column="CollateralValue",
                     row_condition=f"ProductSegment in ({', '.join(json.dumps(s) for s in secured)})",
                     condition_parser="pandas"),
        # Duplicates within tolerance are quarantined (GX lists every row of a duplicated id); above it the
        # expectation fails as a whole and the run stops. Ids are compared as loan_id_key normalises them.
        expectation("expect_column_values_to_be_unique", "table", "duplicate_LoanId", column=LOAN_ID_KEY),
    ]
    return {"name": SUITE_NAME, "expectations": expectations,
            "meta": {"generated_from": "pipelines/data/contract.py"}}


def write_suite(path: Path = SUITE_PATH) -> Path:
    """Regenerate the suite file from the contract."""
    path.write_text(json.dumps(build_suite_dict(), indent=2) + "\n")
    return path


@dataclass
class ValidationOutcome:
    """The accepted rows (contract schema), the quarantined rows with reasons, and GX's verdicts."""

    accepted: pa.Table
    quarantine: pa.Table
    input_rows: int
    failed_expectations: dict[str, int]
    data_docs_dir: Path | None

    @property
    def pass_rate(self) -> float:
        return self.accepted.num_rows / self.input_rows if self.input_rows else 0.0


def validate(tape: TypedTape, *, duplicate_tolerance: float, balance_tolerance: float,
             data_docs_dir: Path | None = None, timings: dict[str, float] | None = None) -> ValidationOutcome:
    """Run the suite on ``tape``; quarantine failing rows, stop on a broken table rule.

    ``timings``, when given, receives the seconds of each sub-step.
    """
    timings = {} if timings is None else timings
    with timed(timings, "gx_import"):
        # The first import of GX in a process takes seconds whatever the tape: timed on its own.
        import great_expectations  # noqa: F401
    with timed(timings, "validation_frame"):
        frame = _validation_frame(tape.table, balance_tolerance)
    with timed(timings, "gx_checkpoint_and_data_docs"):
        results = _run_suite(frame, data_docs_dir, duplicate_tolerance)
    del frame  # a copy of the tape as wide as the tape itself: not kept while the quarantine is built
    with timed(timings, "quarantine"):
        bad, reason_texts, failed = rule_breaks(tape.table.column(ROW_NUMBER).to_numpy(), tape.type_errors,
                                                text_rule_breaks(tape.table), results, tape.source)
        del results
        accepted, quarantine = split_rows(tape, bad, reason_texts)
        if accepted.num_rows + quarantine.num_rows != tape.input_rows:
            raise AssertionError("validation lost rows: accepted + quarantined != input")
    return ValidationOutcome(accepted, quarantine, tape.input_rows, failed, data_docs_dir)


def rule_breaks(row_numbers: np.ndarray, type_errors: dict[int, list[str]], text_breaks: list[tuple[str, np.ndarray]],
                results: list[dict[str, Any]], source: str) -> tuple[np.ndarray, pa.Array, dict[str, int]]:
    """Which rows (of ``row_numbers``) break a rule, each bad row's reason text, and the failed expectations.

    Gathers the cells that did not parse (``type_errors``), the contract's text rules and the GX results'
    unexpected rows; raises :class:`TableContractError` on a failed table expectation. The local path
    and the Spark ETL both end here, so a row gets the same reasons whichever engine found them.
    """
    breaks = RuleBreaks(row_numbers)
    rows_by_type_error: dict[str, list[int]] = {}
    for row, errors in type_errors.items():
        for error in errors:
            rows_by_type_error.setdefault(error, []).append(row)
    for error, rows in rows_by_type_error.items():
        breaks.add_rows(error, rows)
    for rule, rows in text_breaks:
        breaks.add_rows(rule, rows)
    failed: dict[str, int] = {}
    for result in results:
        config = result["expectation_config"]
        meta, rule = config["meta"], config["meta"]["rule"]
        unexpected = result["result"].get("unexpected_index_list") or []
        if not result["success"]:
            failed[rule] = result["result"].get("unexpected_count", len(unexpected))
        if meta["level"] == "table" and not result["success"]:
            raise TableContractError(_table_failure_message(config, result, source), rule=meta["rule"])
        breaks.add_rows(rule, unexpected)
    bad, reason_texts = breaks.reasons_of_bad_rows()
    return bad, reason_texts, failed


def split_rows(tape: TypedTape, bad: np.ndarray, reason_texts: pa.Array) -> tuple[pa.Table, pa.Table]:
    """The accepted rows (contract schema) and the quarantine of the rows marked ``bad`` with their reasons."""
    accepted = tape.table.filter(pa.array(~bad)).select(list(COLUMN_NAMES)).cast(ARROW_SCHEMA)
    return accepted, _quarantine_table(tape, bad, reason_texts)


def _validation_frame(table: pa.Table, balance_tolerance: float):
    """A pandas view GX can check quickly, with the values and nulls of ``table`` unchanged.

    The dtypes are chosen for the code paths GX takes on them: decimals as float64 and integers as
    int64 (``expect_column_values_to_be_between`` is vectorised only for int64/float64; on int16 or
    int32 it calls a Python function per value), dates as datetime64[s], and enumerated columns as
    categoricals (GX fingerprints the whole frame and copies every column of the rows a
    ``row_condition`` selects, both far cheaper on category codes than on strings).

    The row numbers are the frame's index, unnamed, so GX's ``unexpected_index_list`` is simply the
    index of the unexpected rows. Named as an index or listed in ``unexpected_index_column_names``,
    they make GX build a dict per unexpected row in Python (~5 s per 70,000 unexpected values).
    """
    import pandas as pd

    columns = validation_columns(table, balance_tolerance, for_spark=False)
    frame = pd.DataFrame({name: column.to_pandas() for name, column in columns.items()})
    frame.index = pd.Index(table.column(ROW_NUMBER).to_numpy())
    return frame


def validation_columns(table: pa.Table, balance_tolerance: float, *, for_spark: bool) -> dict[str, pa.ChunkedArray]:
    """The columns the suite checks, with the values and nulls of ``table``: the same numbers for either engine.

    For pandas (see :func:`_validation_frame`) dates are timestamps and enumerated columns categoricals;
    for Spark dates stay dates and enumerations plain strings (Spark has neither pandas type). Both are
    per-row functions of the tape, so the Spark ETL computes them chunk by chunk.
    """
    columns = {}
    for f in FIELDS:
        column = table.column(f.name)
        if f.is_decimal:
            column = column.cast(pa.float64())
        elif pa.types.is_integer(f.arrow_type):
            column = column.cast(pa.int64())
        elif pa.types.is_date(f.arrow_type) and not for_spark:
            column = column.cast(pa.timestamp("s"))
        elif f.allowed and not for_spark:
            column = column.dictionary_encode()
        columns[f.name] = column
    # NaN (a missing amount or balance) as null: pandas reads it back as NaN, Spark would keep a NaN GX counts.
    excess = pa.array(_balance_excess(table, balance_tolerance), pa.float64(), from_pandas=True)
    columns[BALANCE_EXCESS] = pa.chunked_array([excess])
    columns[LOAN_ID_KEY] = loan_id_key(table.column("LoanId"))
    return columns


def loan_id_key(loan_ids: pa.ChunkedArray) -> pa.ChunkedArray:
    """LoanIds as the duplicate check compares them: NFKC, without invisible and control characters, then
    the confusables skeleton (see :mod:`pipelines.data.confusables`).

    Ids that differ only by a zero-width space, a BOM, a NUL, full-width digits or a Cyrillic 'А' for a
    Latin 'A' name the same loan to a person reading them, so they must not pass as two loans. Plain
    printable ASCII (nearly every id) is its own key and is not touched in Python; each distinct other
    id is keyed once and the keys are put in place by Arrow.
    """
    special, needs_work = _distinct_non_ascii(loan_ids)
    if special is None:
        return loan_ids
    keys = pa.array([skeleton(_normalised(loan_id)) for loan_id in special.to_pylist()], pa.string())
    return pc.if_else(needs_work, pc.take(keys, pc.index_in(loan_ids, value_set=special)), loan_ids)


def _distinct_non_ascii(loan_ids: pa.ChunkedArray) -> tuple[pa.Array | None, pa.ChunkedArray]:
    """The distinct ids that are not plain printable ASCII (None when there is none), and where they are."""
    needs_work = pc.invert(pc.fill_null(pc.match_substring_regex(loan_ids, _PLAIN_ASCII), True))
    if not pc.any(needs_work).as_py():
        return None, needs_work
    return pc.unique(loan_ids.filter(needs_work)), needs_work


def _normalised(loan_id: str) -> str:
    """NFKC without invisible and control characters."""
    normal = unicodedata.normalize("NFKC", loan_id).translate(_INVISIBLE)
    return "".join(c for c in normal if unicodedata.category(c) != "Cc")


def text_rule_breaks(table: pa.Table) -> list[tuple[str, np.ndarray]]:
    """(rule, row numbers) for every TEXT_RULES rule of the contract some text cell breaks, checked in Arrow
    (the mixed-script test runs in Python once per distinct non-ASCII LoanId)."""
    row_numbers = table.column(ROW_NUMBER)
    hits: list[tuple[str, pa.ChunkedArray]] = []
    for f in FIELDS:
        if not pa.types.is_string(f.arrow_type):
            continue
        pattern, rule = ((_CONTROL_CHARACTERS, CONTROL_CHARACTERS_RULE) if f.name == "LoanId"
                         else (_NUL, NUL_CHARACTER_RULE))
        hits.append((f"{rule.name}:{f.name}",
                     pc.fill_null(pc.match_substring_regex(table.column(f.name), pattern), False)))
    special, _ = _distinct_non_ascii(table.column("LoanId"))
    if special is not None:
        mixed = pa.array([loan_id for loan_id in special.to_pylist() if is_mixed_script(_normalised(loan_id))],
                         pa.string())
        hits.append((f"{MIXED_SCRIPT_RULE.name}:LoanId", pc.is_in(table.column("LoanId"), value_set=mixed)))
    return [(rule, row_numbers.filter(hit).to_numpy()) for rule, hit in hits if pc.any(hit).as_py()]


def _balance_excess(table: pa.Table, balance_tolerance: float) -> np.ndarray:
    """CurrentBalance - LoanAmount x (1 + tolerance), in exact decimal arithmetic.

    In float64 a balance exactly at the limit can come out at +1e-12; rounding would instead let a
    fraction of a cent over the limit through. Exact decimals have neither problem.
    """
    factor = pa.scalar(Decimal(1) + Decimal(str(balance_tolerance)), pa.decimal128(12, 8))
    limit = pc.multiply(table.column("LoanAmount"), factor)
    return pc.subtract(table.column("CurrentBalance"), limit).cast(pa.float64()).to_numpy(zero_copy_only=False)


def _run_suite(frame, data_docs_dir: Path | None, duplicate_tolerance: float) -> list[dict[str, Any]]:
    return run_gx_suite(frame, loan_tape_suite(duplicate_tolerance), data_docs_dir)


def loan_tape_suite(duplicate_tolerance: float, *, condition_parser: str = "pandas") -> dict[str, Any]:
    """The suite of ``expectations/loan_tape.json`` with the run's duplicate tolerance.

    ``condition_parser="spark"`` gives the same expectations for a Spark dataframe: the conditions are
    written so that pandas' query and Spark SQL read them alike (``==`` and ``in (...)``).
    """
    suite_dict = json.loads(SUITE_PATH.read_text())
    for entry in suite_dict["expectations"]:
        if entry["meta"]["rule"] == "duplicate_LoanId":
            entry["kwargs"]["mostly"] = 1.0 - duplicate_tolerance
        if "condition_parser" in entry["kwargs"]:
            entry["kwargs"]["condition_parser"] = condition_parser
    return suite_dict


def _table_failure_message(config: dict[str, Any], result: dict[str, Any], source: str) -> str:
    examples = result["result"].get("partial_unexpected_list") or []
    detail = result["result"]
    if config["meta"]["rule"] == "duplicate_LoanId":
        share = detail.get("unexpected_percent", 0.0)
        return (f"{config['type']} failed for {source!r}: {detail.get('unexpected_count')} rows "
                f"({share:.2f} %) share a LoanId, above the tolerance; example ids: {examples[:5]}")
    return f"{config['type']} failed for {source!r} (kwargs {config['kwargs']}): observed {detail}"


class RuleBreaks:
    """Which rule each row of the tape breaks, as bits per row: a million bad rows cost a few megabytes,
    not a Python list of reasons per row.

    Rows break few distinct combinations of rules (a tape with every row out of range has one), so the
    reason text of each distinct combination is written once and the rows take it by index.
    """

    def __init__(self, row_numbers: np.ndarray) -> None:
        self.row_numbers = row_numbers
        self.rules: list[str] = []
        self.bits = np.zeros((len(row_numbers), 1), dtype=np.uint64)
        self._ordered = bool(np.all(row_numbers[1:] > row_numbers[:-1]))
        self._order = None if self._ordered else np.argsort(row_numbers, kind="stable")

    def add_rows(self, rule: str, rows) -> None:
        """Mark the rows numbered ``rows`` as breaking ``rule``."""
        if rule not in self.rules:
            self.rules.append(rule)
            if len(self.rules) > 64 * self.bits.shape[1]:
                self.bits = np.hstack([self.bits, np.zeros((len(self.bits), 1), dtype=np.uint64)])
        index = self.rules.index(rule)
        positions = self._positions(np.asarray(rows, dtype=np.int64))
        self.bits[positions, index // 64] |= np.uint64(1 << (index % 64))

    def _positions(self, rows: np.ndarray) -> np.ndarray:
        if self._ordered:
            return np.searchsorted(self.row_numbers, rows)
        return self._order[np.searchsorted(self.row_numbers, rows, sorter=self._order)]

    def reasons_of_bad_rows(self) -> tuple[np.ndarray, pa.Array]:
        """Which rows broke a rule, and the reason text of each such row (in row order)."""
        bad = self.bits.any(axis=1)
        combinations, of_row = np.unique(self.bits[bad], axis=0, return_inverse=True)
        texts = [self._reason_text(combination) for combination in combinations]
        return bad, pa.array(texts, pa.string()).take(pa.array(of_row.reshape(-1), pa.int64()))

    def _reason_text(self, combination: np.ndarray) -> str:
        """The rules of one combination sorted, ``; ``-joined. A cell that did not parse is already explained
        by its type:Column reason; GX's not_null on that cell is the same fault, so it is not repeated."""
        rules = [rule for index, rule in enumerate(self.rules)
                 if int(combination[index // 64]) >> (index % 64) & 1]
        typed = {r.split(":", 1)[1] for r in rules if r.startswith("type:")}
        return "; ".join(sorted(r for r in rules if not (r.startswith("not_null:") and r.split(":", 1)[1] in typed)))


_RECORDS_PER_BATCH = 100_000  # raw records built at a time: the per-column pieces of a batch are transient


def _quarantine_table(tape: TypedTape, bad: np.ndarray, reason_texts: pa.Array) -> pa.Table:
    """Quarantined rows: row number, reasons, and the raw record as it arrived (JSON text), in row order."""
    text = tape.raw_text.filter(pa.array(bad))
    numbers = text.column(ROW_NUMBER).cast(pa.int64())
    records = pa.chunked_array(
        [chunk for start in range(0, text.num_rows, _RECORDS_PER_BATCH)
         for chunk in raw_records_json(text.slice(start, _RECORDS_PER_BATCH).drop_columns([ROW_NUMBER])).chunks],
        pa.string())
    del text
    rows = pa.table({ROW_NUMBER: numbers, "reasons": reason_texts, "raw_record": records})
    if not tape.malformed:
        return rows
    malformed = pa.table({
        ROW_NUMBER: pa.array([m.row_number for m in tape.malformed], pa.int64()),
        "reasons": pa.array([m.reason for m in tape.malformed], pa.string()),
        "raw_record": pa.array([json.dumps({"line": m.text}, ensure_ascii=False) for m in tape.malformed],
                               pa.string()),
    })
    return pa.concat_tables([rows, malformed]).sort_by(ROW_NUMBER)


def raw_records_json(text: pa.Table) -> pa.ChunkedArray:
    """Each row of ``text`` as the JSON object ``{column: cell text or null}``, built column-wise in Arrow.

    The text is what ``json.dumps(..., ensure_ascii=False)`` writes: quotes and backslashes escaped,
    other characters as they are. The rare cells Arrow cannot write that way (bytes that are not
    UTF-8, shown backslash-escaped rather than lost, and control characters, which JSON escapes as
    ``\\uXXXX``) send their row through ``json.dumps``; a tape whose every row is bad for a range or a
    type is then quarantined at Arrow speed, not at one Python dict per row.
    """
    needs_python = np.zeros(text.num_rows, dtype=bool)
    fragments = []
    for name in text.column_names:
        column = text.column(name)
        kind = column.type
        is_bytes = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
        is_text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        if is_bytes:
            column, undecodable = _as_utf8(column)
            needs_python |= undecodable
        elif is_text:
            column = column.cast(pa.string())
        elif pa.types.is_integer(kind) or pa.types.is_decimal(kind) or pa.types.is_date(kind):
            column = column.cast(pa.string())  # Arrow's text is Python's str() and holds nothing JSON escapes
        else:  # any other type: its rows are written by json.dumps, as they always were
            needs_python[:] = True
            column = pa.chunked_array([pa.nulls(len(column), pa.string())])
        if is_bytes or is_text:
            for character, escaped in (("\\", "\\\\"), ('"', '\\"')):
                if pc.any(pc.match_substring(column, character)).as_py():
                    column = pc.replace_substring(column, character, escaped)
        key = json.dumps(name, ensure_ascii=False)
        fragments.append(pc.coalesce(pc.binary_join_element_wise(f'{key}: "', column, '"', ""), f"{key}: null"))
    records = pc.binary_join_element_wise("{", pc.binary_join_element_wise(*fragments, ", ") if fragments else "",
                                          "}", "")
    # Keys are JSON-escaped already, so a control character in a record is one of a cell's.
    needs_python |= pc.match_substring_regex(records, r"[\x00-\x1f]").to_numpy(zero_copy_only=False)
    if needs_python.any():
        rows = text.filter(pa.array(needs_python)).to_pylist()
        exact = pa.array([json.dumps(_printable(row), ensure_ascii=False) for row in rows], pa.string())
        records = pc.replace_with_mask(records.combine_chunks(), pa.array(needs_python), exact)
    return records if isinstance(records, pa.ChunkedArray) else pa.chunked_array([records])


def _printable(record: dict[str, Any]) -> dict[str, str | None]:
    """Raw cells as text; undecodable bytes are shown escaped rather than lost."""
    return {key: value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes)
            else None if value is None else str(value) for key, value in record.items()}


def _as_utf8(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """A binary column as text, and which cells are not valid UTF-8 (left null here)."""
    try:
        return column.cast(pa.string()), np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        values = column.to_pylist()
        undecodable = np.fromiter((_undecodable(v) for v in values), dtype=bool, count=len(values))
        kept = [None if u else v for v, u in zip(values, undecodable, strict=True)]
        return pa.chunked_array([pa.array(kept, pa.binary()).cast(pa.string())]), undecodable


def _undecodable(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def count_by_reason(quarantine: pa.Table) -> dict[str, int]:
    """How many quarantined rows carry each reason (a row may carry several), most frequent first."""
    reasons = pc.list_flatten(pc.split_pattern(quarantine.column("reasons"), "; "))
    counts = pc.value_counts(reasons).to_pylist() if len(reasons) else []
    return dict(sorted(((c["values"], c["counts"]) for c in counts), key=lambda item: -item[1]))
