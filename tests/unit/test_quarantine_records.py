"""The quarantine's raw records, built column-wise in Arrow, are exactly what ``json.dumps`` of each row writes."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.data.validation import count_by_reason, raw_records_json

CELL_BYTES = st.one_of(st.none(), st.binary(max_size=12),
                       st.text(max_size=12).map(lambda text: text.encode("utf-8")))
TEXT = st.one_of(st.none(), st.text(max_size=12))
AMOUNT = st.one_of(st.none(), st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False))
DAY = st.one_of(st.none(), st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)))
SCORE = st.one_of(st.none(), st.integers(-32768, 32767))


def python_record(row: dict) -> str:
    """The row as the quarantine wrote it one dict at a time (undecodable bytes backslash-escaped)."""
    return json.dumps({key: value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes)
                       else None if value is None else str(value) for key, value in row.items()},
                      ensure_ascii=False)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(CELL_BYTES, TEXT, AMOUNT, DAY, SCORE), min_size=1, max_size=20),
       st.text(min_size=1, max_size=6))
def test_raw_records_equal_json_dumps_of_each_row(rows, odd_name) -> None:
    raw, text, amount, day, score = (list(column) for column in zip(*rows, strict=True))
    table = pa.table({
        "raw": pa.array(raw, pa.binary()), f"text {odd_name}": pa.array(text, pa.string()),
        "amount": pa.array(amount, pa.decimal128(18, 2)), "day": pa.array(day, pa.date32()),
        "score": pa.array(score, pa.int16()),
    })
    assert raw_records_json(table).to_pylist() == [python_record(row) for row in table.to_pylist()]


def test_raw_records_of_awkward_cells() -> None:
    cells = [b'quo"te', b"back\\slash", b"tab\there", b"nul\x00", b"\xff\xfe not utf-8", None, "Zürich".encode(),
             b"", b"\x7f", "\u2028".encode()]
    table = pa.table({"cell": pa.array(cells, pa.binary()), "amount": pa.array([Decimal("1.50")] * len(cells))})
    records = [json.loads(record) for record in raw_records_json(table).to_pylist()]
    assert [r["cell"] for r in records] == [
        'quo"te', "back\\slash", "tab\there", "nul\x00", "\\xff\\xfe not utf-8", None, "Zürich", "", "\x7f", "\u2028"]
    assert {r["amount"] for r in records} == {"1.50"}


def test_count_by_reason_counts_each_reason_of_each_row() -> None:
    quarantine = pa.table({"reasons": ["range:CreditScore; allowed:Region", "range:CreditScore", "type:LoanAmount",
                                       "range:CreditScore; type:LoanAmount"]})
    assert count_by_reason(quarantine) == {"range:CreditScore": 3, "type:LoanAmount": 2, "allowed:Region": 1}
    assert next(iter(count_by_reason(quarantine))) == "range:CreditScore"
    assert count_by_reason(quarantine.slice(0, 0)) == {}


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(1, 31))),
       st.lists(st.tuples(st.sampled_from([f"range:C{i}" for i in range(70)] + ["type:A", "not_null:A",
                                                                                "not_null:B"]),
                          st.lists(st.integers(1, 30), max_size=8)), max_size=40))
def test_rule_breaks_give_each_row_its_reasons(row_numbers, marks) -> None:
    """Against a dict of sets: any row order, more than 64 rules, a type error hiding its not_null."""
    import numpy as np

    from pipelines.data.validation import RuleBreaks

    breaks = RuleBreaks(np.array(row_numbers, dtype=np.int64))
    expected: dict[int, set[str]] = {}
    for rule, rows in marks:
        breaks.add_rows(rule, rows)
        for row in rows:
            expected.setdefault(row, set()).add(rule)
    bad, texts = breaks.reasons_of_bad_rows()
    for rules in expected.values():
        if "type:A" in rules:
            rules.discard("not_null:A")
    assert [n for n, b in zip(row_numbers, bad, strict=True) if b] == [n for n in row_numbers if n in expected]
    assert texts.to_pylist() == ["; ".join(sorted(expected[n])) for n in row_numbers if n in expected]
