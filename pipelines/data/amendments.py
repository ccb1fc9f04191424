"""Loan amendments: the fields a service may change, their checks against the contract, and how the next
ingest applies them.

Why here and not in the services: the rules an amended loan must meet are the loan contract's
(ranges, exactness of money and rates, the cross-field rules), and the ingest that applies pending
amendments runs the same checks again on the loan as the new tape delivers it (its other fields may
have moved since the update was accepted). A published snapshot is never rewritten: an amendment
becomes part of the next snapshot the ingest publishes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from pipelines.data.contract import FIELD_BY_NAME, SECURED_SEGMENTS

# What a service may change: the loan's pricing, balance and risk as the bank's systems move them.
# Identity, dates, product and borrower fields come only from the tape.
UPDATABLE_FIELDS = ("InterestRate", "RateMargin", "CurrentBalance", "DefaultRiskScore", "CollateralValue",
                    "DaysPastDue")
# The decimal grammar of money and rates on the wire: optional sign, digits, optional fraction. No
# exponent, no NaN or Infinity, no spaces, no empty string; at most 30 characters.
DECIMAL_TEXT = re.compile(r"^[+-]?[0-9]{1,20}(\.[0-9]{1,12})?$")


class AmendmentError(ValueError):
    """An amendment the contract refuses; ``reasons`` names each broken rule."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def parse_decimal(text: str, name: str) -> Decimal:
    """``text`` as an exact decimal under :data:`DECIMAL_TEXT`; raises :class:`AmendmentError` otherwise."""
    if not isinstance(text, str) or not DECIMAL_TEXT.match(text):
        raise AmendmentError([f"{name}: {text!r} is not a decimal number (digits with an optional sign and "
                              "fraction, e.g. 0.0725; no exponent, NaN, Infinity or empty value)"])
    try:
        return Decimal(text)
    except InvalidOperation as error:  # unreachable under the grammar; kept as the last word on the text
        raise AmendmentError([f"{name}: {text!r} is not a decimal number"]) from error


def parse_changes(changes: Mapping[str, str | None]) -> dict[str, Decimal | int | None]:
    """Typed values of the requested changes ({field: text or None to clear}); every bad entry reported at once."""
    reasons, typed = [], {}
    if not changes:
        raise AmendmentError(["no field to change; updatable fields: " + ", ".join(UPDATABLE_FIELDS)])
    for name, text in changes.items():
        if name not in UPDATABLE_FIELDS:
            reasons.append(f"{name}: not an updatable field (updatable: {', '.join(UPDATABLE_FIELDS)})")
            continue
        field = FIELD_BY_NAME[name]
        if text is None:
            if not field.nullable:
                reasons.append(f"{name}: required, cannot be cleared")
            typed[name] = None
            continue
        try:
            if field.is_decimal:
                value = parse_decimal(text, name)
                if -value.as_tuple().exponent > field.arrow_type.scale:  # type: ignore[operator]
                    reasons.append(f"{name}: {text} has more than {field.arrow_type.scale} decimal places")
                    continue
                typed[name] = value
            elif not re.fullmatch(r"[0-9]{1,9}", text):
                reasons.append(f"{name}: {text!r} is not a whole number")
            else:
                typed[name] = int(text)
        except AmendmentError as error:
            reasons.extend(error.reasons)
    if reasons:
        raise AmendmentError(reasons)
    return typed


def contract_breaches(loan: Mapping[str, Any], balance_tolerance: float) -> list[str]:
    """The contract rules the amended ``loan`` breaks, named as the quarantine names them (empty: none)."""
    reasons = []
    for name in UPDATABLE_FIELDS:
        field, value = FIELD_BY_NAME[name], loan[name]
        if value is None:
            if not field.nullable:
                reasons.append(f"not_null:{name}")
            continue
        number = Decimal(value)
        if (field.minimum is not None and number < Decimal(str(field.minimum))) or (
                field.maximum is not None and number > Decimal(str(field.maximum))):
            reasons.append(f"range:{name} ({_bounds(field.minimum, field.maximum)})")
    balance, amount = loan["CurrentBalance"], loan["LoanAmount"]
    if balance is not None and Decimal(balance) > Decimal(amount) * (1 + Decimal(str(balance_tolerance))):
        reasons.append("balance_within_amount")
    if (loan["RateType"] == "variable") != (loan["RateMargin"] is not None):
        reasons.append("variable_rate_terms")
    if loan["ProductSegment"] in {s.value for s in SECURED_SEGMENTS} and loan["CollateralValue"] is None:
        reasons.append("secured_has_collateral")
    return reasons


def _bounds(minimum: float | None, maximum: float | None) -> str:
    return f"{'' if minimum is None else f'{minimum:g}'} .. {'' if maximum is None else f'{maximum:g}'}"


def apply_amendments(accepted: pa.Table, amendments: list[dict[str, Any]], balance_tolerance: float
                     ) -> tuple[pa.Table, dict[str, tuple[str, str]]]:
    """The accepted loans with the pending ``amendments`` applied, and what became of each one.

    Amendments apply per loan in version order; each one's new values replace the tape's. A loan
    that breaks the contract once amended keeps the tape's values and the amendment is rejected
    with the reasons. Amendments of loans not on this tape stay pending (the outcome omits them).
    Returns ``(table, {amendment_id: ("applied" | "rejected", note)})``.
    """
    if not amendments:
        return accepted, {}
    row_of = {loan_id: row for row, loan_id in enumerate(accepted.column("LoanId").to_pylist())}
    ours = [a for a in amendments if a["loan_id"] in row_of]
    if not ours:
        return accepted, {}
    columns = {name: accepted.column(name).to_pylist() for name in accepted.column_names}
    outcomes: dict[str, tuple[str, str]] = {}
    for amendment in sorted(ours, key=lambda a: (a["loan_id"], a["version"])):
        row = row_of[amendment["loan_id"]]
        loan = {name: values[row] for name, values in columns.items()}
        changed = {name: typed_value(name, change["new"]) for name, change in amendment["changes"].items()}
        breaches = contract_breaches({**loan, **changed}, balance_tolerance)
        if breaches:
            outcomes[amendment["amendment_id"]] = ("rejected", "the loan on this tape would break " +
                                                   ", ".join(breaches))
            continue
        for name, value in changed.items():
            columns[name][row] = value
        outcomes[amendment["amendment_id"]] = ("applied", f"version {amendment['version']} applied")
    table = pa.table({name: pa.array(values, accepted.schema.field(name).type) for name, values in columns.items()},
                     schema=accepted.schema)
    return table, outcomes


def typed_value(name: str, text: str | None) -> Decimal | int | None:
    """A stored amendment value (text) as the column's Python type."""
    if text is None:
        return None
    return Decimal(text) if FIELD_BY_NAME[name].is_decimal else int(text)
