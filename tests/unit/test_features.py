"""Known-answer tests of the jump-off feature table (``pipelines.data.features.build_features``).

Four loans of the hand-written tape in ``tests/conftest.py`` at ``as_of = 2025-12-31``, typed with
the loan contract's Arrow schema. The conventions (from ``pipelines/data/features.py``):

* loan age in whole months ``12 (y_asof - y_start) + (m_asof - m_start)`` (days ignored), in
  quarters ``floor(months / 3)``;
* remaining quarters ``ceil(months to maturity / 3)``, 0 once past maturity;
* quarterly payment: level annuity ``B r / (1 - (1 + r)^-n)`` with ``r = rate / 4`` over the
  remaining quarters for annuities, interest ``B r`` for the other schedules;
* DSTI ``= 4 x payment / income``; LTV ``= (senior liens + balance) / collateral``, the combined LTV
  (an empty SeniorLienBalance is none; NaN when unsecured);
* macro values of the as-of quarter, or the latest quarter before it.

Each expected value is worked out in the comments from the tape's own figures.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.amortisation import ScheduleCode
from models.projection import PD_FEATURES
from pipelines.data.contract import ARROW_SCHEMA
from pipelines.data.features import JUMP_OFF_MACRO, build_features, history_income_missing, history_pd_features

AS_OF = date(2025, 12, 31)
LOAN_IDS = ("M-0001", "H-0003", "K-0001", "P-0003")


def contract_table(rows: list[dict[str, str]]) -> pa.Table:
    """The tape rows (strings, empty = missing) as a table of the contract's schema."""
    columns = {}
    for field in ARROW_SCHEMA:
        texts = [row.get(field.name, "") for row in rows]  # an optional column may be absent
        if pa.types.is_decimal(field.type):
            values = [Decimal(t) if t else None for t in texts]
        elif pa.types.is_date(field.type):
            values = [date.fromisoformat(t) for t in texts]
        elif pa.types.is_integer(field.type):
            values = [int(t) for t in texts]
        else:
            values = [t or None for t in texts]
        columns[field.name] = pa.array(values, type=field.type)
    return pa.table(columns, schema=ARROW_SCHEMA)


def macro_history() -> pd.DataFrame:
    """Two published quarters, both before the as-of quarter 2025Q4 (so 2025Q3 must be used)."""
    index = pd.PeriodIndex([pd.Period("2025Q2", freq="Q"), pd.Period("2025Q3", freq="Q")], name="quarter")
    return pd.DataFrame({name: [1.0 + i, 2.0 + i] for i, name in enumerate(JUMP_OFF_MACRO)}, index=index)


@pytest.fixture(scope="module")
def features(valid_tape_rows_factory) -> pd.DataFrame:
    rows = [row for row in valid_tape_rows_factory() if row["LoanId"] in LOAN_IDS]
    for row in rows:
        if row["LoanId"] == "H-0003":
            row["SeniorLienBalance"] = "400000.00"  # the first mortgage ahead of the line
    table = build_features(contract_table(rows), AS_OF, macro_history())
    assert table.schema.metadata[b"macro_quarter"] == b"2025Q3"
    return table.to_pandas().set_index("LoanId")


def test_fixed_rate_mortgage(features: pd.DataFrame) -> None:
    loan = features.loc["M-0001"]  # 318,250.12 at 6.5 %, 2019-03-15 to 2049-03-15, income 142,000
    # Age: 6 x 12 + (12 - 3) = 81 months -> 27 quarters. Left: 24 x 12 + (3 - 12) = 279 months -> 93 quarters.
    assert loan["LoanAgeQuarters"] == 27
    assert loan["RemainingQuarters"] == 93
    assert loan["ScheduleCode"] == ScheduleCode.ANNUITY
    r = 0.065 / 4
    payment = 318_250.12 * r / (1 - (1 + r) ** -93)
    assert payment == pytest.approx(6_658.64, abs=0.005)  # closed form, to the cent
    assert loan["QuarterlyPayment"] == pytest.approx(payment, rel=1e-12)
    assert loan["DebtServiceToIncome"] == pytest.approx(4 * payment / 142_000, rel=1e-12)  # 0.1876
    assert loan["LoanToValue"] == pytest.approx(318_250.12 / 455_000, rel=1e-12)  # 0.6994
    assert not loan["IsVariableRate"]


def test_interest_only_heloc(features: pd.DataFrame) -> None:
    loan = features.loc["H-0003"]  # 99,000 at 7.25 %, 2017-09-12 to 2027-09-12, income 210,000
    # Age: 8 x 12 + 3 = 99 months -> 33 quarters; left: 2 x 12 - 3 = 21 months -> 7 quarters.
    assert loan["LoanAgeQuarters"] == 33
    assert loan["RemainingQuarters"] == 7
    # Interest only: 99,000 x 0.0725 / 4 = 1,794.375 a quarter; DSTI 7,177.5 / 210,000.
    assert loan["QuarterlyPayment"] == pytest.approx(1_794.375, rel=1e-12)
    assert loan["DebtServiceToIncome"] == pytest.approx(7_177.5 / 210_000, rel=1e-12)
    # Combined LTV of a junior lien: (400,000 first lien + 99,000) / 720,000 property, not 99,000 / 720,000.
    assert loan["LoanToValue"] == pytest.approx(499_000 / 720_000, rel=1e-12)


def test_unsecured_variable_rate_card(features: pd.DataFrame) -> None:
    loan = features.loc["K-0001"]  # 4,321.09 at 22.99 % on prime, 2019-01-01 to 2029-01-01, income 48,000
    # Age: 6 x 12 + 11 = 83 months -> 27 quarters (floor); left: 4 x 12 - 11 = 37 months -> 13 quarters (ceil).
    assert loan["LoanAgeQuarters"] == 27
    assert loan["RemainingQuarters"] == 13
    assert loan["QuarterlyPayment"] == pytest.approx(4_321.09 * 0.2299 / 4, rel=1e-12)  # 248.35
    assert loan["DebtServiceToIncome"] == pytest.approx(4_321.09 * 0.2299 / 48_000, rel=1e-12)
    assert np.isnan(loan["LoanToValue"])
    assert loan["IsVariableRate"]
    assert loan["RateMargin"] == pytest.approx(0.145)


def test_loan_past_maturity_has_no_quarters_left(features: pd.DataFrame) -> None:
    loan = features.loc["P-0003"]  # 2021-06-30 to 2024-06-30
    # Age 4 x 12 + 6 = 54 months -> 18 quarters; maturity 18 months ago -> 0 remaining quarters.
    assert loan["LoanAgeQuarters"] == 18
    assert loan["RemainingQuarters"] == 0


def test_macro_columns_come_from_the_latest_quarter_before_as_of(features: pd.DataFrame) -> None:
    for i, name in enumerate(JUMP_OFF_MACRO):
        np.testing.assert_array_equal(features[f"macro_{name}"], 2.0 + i)


def test_missing_or_zero_income_gets_the_stressed_dsti_and_a_flag(valid_tape_rows_factory) -> None:
    # The card K-0001 again, with income 0 and with income missing: DSTI is the stressed 1.5 (not NaN, which a
    # model would impute as no debt at all), flagged; the original keeps 4,321.09 x 0.2299 / 48,000.
    card = next(row for row in valid_tape_rows_factory() if row["LoanId"] == "K-0001")
    rows = [card, card | {"LoanId": "K-ZERO", "BorrowerIncome": "0"}, card | {"LoanId": "K-NONE", "BorrowerIncome": ""}]
    table = build_features(contract_table(rows), AS_OF, macro_history()).to_pandas().set_index("LoanId")
    assert table.loc["K-0001", "DebtServiceToIncome"] == pytest.approx(4_321.09 * 0.2299 / 48_000, rel=1e-12)
    assert table.loc[["K-ZERO", "K-NONE"], "DebtServiceToIncome"].tolist() == [1.5, 1.5]
    assert table["IncomeMissing"].tolist() == [False, True, True]


def test_history_rows_without_income_are_trained_on_the_stressed_dsti() -> None:
    # Training sees what scoring sees: a history row with no finite DSTI or no income gets 1.5, the others their own.
    history = pd.DataFrame({name: [1.0, 1.0, 1.0, 1.0] for name in PD_FEATURES})
    history["DSTI"] = [0.3, np.nan, 0.4, np.inf]
    history["BorrowerIncome"] = [50_000.0, 50_000.0, 0.0, 60_000.0]
    np.testing.assert_array_equal(history_income_missing(history), [False, True, True, True])
    np.testing.assert_array_equal(history_pd_features(history)["DSTI"], [0.3, 1.5, 1.5, 1.5])
    assert history["DSTI"].isna().sum() == 1  # the caller's frame is left alone
