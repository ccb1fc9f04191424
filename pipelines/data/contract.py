"""The loan tape data contract: the single definition of every canonical field.

Ingestion casts to these types, the Great Expectations suite in ``expectations/`` is generated
from these rules (``loanstress contract --write``), and ``docs/loan_contract.md`` is rendered from
them, so the code, the checks and the documentation cannot drift apart (a test compares them).

Conventions: money is exact (``decimal128(18, 2)`` in Parquet, ``NUMERIC(18, 2)`` in PostgreSQL,
text in SQLite); rates and probabilities are annual decimal fractions (0.065 = 6.5 %), stored as
``decimal128(12, 8)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from models.segments import SECURED_SEGMENTS, Segment

MONEY = pa.decimal128(18, 2)
RATE = pa.decimal128(12, 8)


__all__ = ["SECURED_SEGMENTS", "Segment"]  # re-exported: the contract's allowed values
REPAYMENT_SCHEDULES = ("annuity", "interest_only", "bullet", "revolving")
RATE_TYPES = ("fixed", "variable")
# Reference indices of variable-rate loans, named after the Fed scenario variable that drives them.
REFERENCE_INDICES = ("treasury_3m", "treasury_5y", "prime", "mortgage")
REGIONS = ("northeast", "midwest", "south", "west")


@dataclass(frozen=True)
class Field:
    """One canonical column: its type, unit, rule and meaning."""

    name: str
    arrow_type: pa.DataType
    unit: str
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    optional: bool = False  # the column may be absent from a tape (read as all empty)

    @property
    def is_money(self) -> bool:
        return self.arrow_type == MONEY

    @property
    def is_decimal(self) -> bool:
        return pa.types.is_decimal(self.arrow_type)


FIELDS: tuple[Field, ...] = (
    Field("LoanId", pa.string(), "identifier", "Unique loan identifier on the tape.", max_length=64),
    Field("CustomerId", pa.string(), "identifier", "Borrower identifier; one borrower may hold many loans.",
          max_length=64),
    Field("LoanAmount", MONEY, "USD", "Original principal, or the committed limit of a revolving line.",
          minimum=0.01, maximum=1e10),
    Field("InterestRate", RATE, "annual fraction", "Current contractual interest rate.", minimum=0.0, maximum=0.40),
    Field("LoanStartDate", pa.date32(), "date", "Origination date."),
    Field("LoanMaturityDate", pa.date32(), "date", "Contractual maturity date; after LoanStartDate."),
    Field("LoanType", pa.string(), "code", "The bank's own product code (e.g. MORTGAGE_30Y_FIXED); finer than "
          "ProductSegment.", max_length=64),
    Field("RepaymentSchedule", pa.string(), "enum", "How principal is repaid.", allowed=REPAYMENT_SCHEDULES),
    Field("CurrentBalance", MONEY, "USD", "Outstanding principal (drawn amount for revolving lines) at the as-of "
          "date.", minimum=0.0, maximum=1e10),
    Field("DefaultRiskScore", RATE, "probability", "The bank's current 12-month probability of default.",
          minimum=0.0, maximum=1.0),
    Field("RateType", pa.string(), "enum", "Fixed rate, or variable rate repricing at index + margin.",
          allowed=RATE_TYPES),
    Field("ReferenceIndex", pa.string(), "enum", "Index a variable-rate loan reprices on; empty for fixed.",
          nullable=True, allowed=REFERENCE_INDICES),
    Field("RateMargin", RATE, "annual fraction", "Margin over the index for variable-rate loans; empty for fixed.",
          nullable=True, minimum=-0.05, maximum=0.25),
    Field("BorrowerIncome", MONEY, "USD per year", "Gross annual income (retail) or net operating income / EBITDA "
          "(commercial).", minimum=0.0, maximum=1e10),
    Field("CreditScore", pa.int16(), "score 300-850", "Bureau score (retail) or internal rating mapped to the "
          "bureau scale (commercial).", minimum=300, maximum=850),
    Field("CollateralValue", MONEY, "USD", "Latest appraised value of the whole collateral (the property for "
          "mortgages, HELOCs and CRE, the vehicle for autos), before any lien; empty for unsecured loans.",
          nullable=True, minimum=0.01, maximum=1e11),
    Field("SeniorLienBalance", MONEY, "USD", "Outstanding balance of the liens ranking ahead of this loan on the "
          "same collateral (the first mortgage behind a HELOC or second lien); empty or absent means none. "
          "Combined LTV = (SeniorLienBalance + CurrentBalance) / CollateralValue.",
          nullable=True, minimum=0.0, maximum=1e11, optional=True),
    Field("Region", pa.string(), "enum", "US census region of the borrower or property.", allowed=REGIONS),
    Field("ProductSegment", pa.string(), "enum", "Stress-test segment: drives the PD model, LGD and the Basel "
          "asset class.", allowed=tuple(s.value for s in Segment)),
    Field("DaysPastDue", pa.int32(), "days", "Days past due at the as-of date.", minimum=0, maximum=3650),
)

FIELD_BY_NAME = {f.name: f for f in FIELDS}
COLUMN_NAMES = tuple(f.name for f in FIELDS)
REQUIRED_COLUMNS = tuple(f.name for f in FIELDS if not f.optional)
ARROW_SCHEMA = pa.schema([pa.field(f.name, f.arrow_type, nullable=f.nullable) for f in FIELDS])


@dataclass(frozen=True)
class RowRule:
    """A rule across columns of one row, checked by the GX suite and quarantined when broken."""

    name: str
    description: str


CROSS_FIELD_RULES: tuple[RowRule, ...] = (
    RowRule("start_before_maturity", "LoanStartDate is before LoanMaturityDate."),
    RowRule("balance_within_amount", "CurrentBalance <= LoanAmount x (1 + balance tolerance)."),
    RowRule("variable_rate_terms", "Variable-rate loans have ReferenceIndex and RateMargin; fixed-rate loans have "
            "neither."),
    RowRule("secured_has_collateral", "Loans of a secured segment have a CollateralValue."),
)


# Rules on the characters of text cells, per column (the quarantine reason is ``<rule>:<column>``).
CONTROL_CHARACTERS_RULE = RowRule("control_characters", "LoanId holds no control character (C0/C1, NUL included).")
NUL_CHARACTER_RULE = RowRule("nul_character", "No other text cell holds a NUL character (PostgreSQL text cannot "
                             "store one).")
MIXED_SCRIPT_RULE = RowRule("mixed_script", "LoanId does not mix letters of several scripts (Latin with "
                            "Cyrillic or Greek look-alikes; Latin with Han, Kana or Hangul is one writing system).")
TEXT_RULES: tuple[RowRule, ...] = (CONTROL_CHARACTERS_RULE, NUL_CHARACTER_RULE, MIXED_SCRIPT_RULE)


def render_markdown() -> str:
    """The contract as a Markdown table, the source of ``docs/loan_contract.md``."""
    lines = [
        "# Loan tape contract",
        "",
        "Generated from `pipelines/data/contract.py` by `loanstress contract --write`; do not edit by hand.",
        "Rates and probabilities are annual decimal fractions (0.065 = 6.5 %). Money is exact: "
        "`decimal128(18,2)` in Parquet, `NUMERIC(18,2)` in PostgreSQL.",
        "",
        "| field | type | unit | required | allowed values / range | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in FIELDS:
        if f.allowed:
            rule = ", ".join(f"`{v}`" for v in f.allowed)
        elif f.minimum is not None or f.maximum is not None:
            rule = f"{_fmt(f.minimum)} .. {_fmt(f.maximum)}"
        elif f.max_length:
            rule = f"non-empty, at most {f.max_length} characters"
        else:
            rule = ""
        required = "no (column optional)" if f.optional else "no" if f.nullable else "yes"
        lines.append(f"| {f.name} | `{f.arrow_type}` | {f.unit} | {required} | {rule} | {f.description} |")
    lines += ["", "## Rules across fields", ""]
    lines += [f"- `{r.name}`: {r.description}" for r in CROSS_FIELD_RULES]
    lines += ["", "## Rules on text cells", ""]
    lines += [f"- `{r.name}:<column>`: {r.description}" for r in TEXT_RULES]
    lines += [
        "",
        "## Table rules (a break stops the run)",
        "",
        "- every column above is present, except the optional ones (an absent optional column reads as empty);",
        "- at least one row;",
        "- duplicated LoanId rows (compared after NFKC, without zero-width, BOM and control characters, by their "
        "Unicode confusables skeleton: a Cyrillic `А` counts as a Latin `A`) are "
        "quarantined while they are at most `STRESS_DUPLICATE_ID_TOLERANCE` of the "
        "rows (default 1 %), and stop the run above that.",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"
