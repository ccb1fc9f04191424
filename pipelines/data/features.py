"""Loan features at the as-of date: the jump-off state every scenario projection starts from.

The output is one float-typed row per loan (money converted from exact decimals to float64 here,
where arithmetic begins) with everything the simulation needs, so a simulation batch reads one
file. Macro variables are those of the as-of quarter, or of the latest published quarter before it
when the as-of date is beyond the Fed history.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.amortisation import QUARTERS_PER_YEAR, project_quarter, schedule_codes
from models.projection import MISSING_INCOME_DSTI, PD_FEATURES, debt_service_to_income, income_missing

MONTHS_PER_QUARTER = 3
JUMP_OFF_MACRO = ("unemployment_rate", "house_price_index", "cre_price_index", "treasury_3m", "treasury_5y",
                  "prime_rate", "mortgage_rate")
PASS_THROUGH = ("LoanId", "ProductSegment", "RepaymentSchedule", "RateType", "ReferenceIndex", "Region")
AS_FLOAT = ("LoanAmount", "InterestRate", "CurrentBalance", "DefaultRiskScore", "RateMargin", "BorrowerIncome",
            "CollateralValue", "SeniorLienBalance", "CreditScore", "DaysPastDue")


def _months_between(start: pa.ChunkedArray, end: date) -> np.ndarray:
    years = pc.year(start).to_numpy(zero_copy_only=False)
    months = pc.month(start).to_numpy(zero_copy_only=False)
    return (end.year - years) * 12 + (end.month - months)


def jump_off_macro(as_of: date, history: pd.DataFrame) -> pd.Series:
    """Macro values of the as-of quarter (or the latest published one before it)."""
    quarter = pd.Period(as_of, freq="Q")
    known = history.loc[history.index <= quarter]
    if known.empty:
        raise ValueError(f"as-of date {as_of} is before the macro history starts ({history.index[0]})")
    row = known.iloc[-1][list(JUMP_OFF_MACRO)]
    row.attrs["quarter"] = str(known.index[-1])
    return row


def build_features(loans: pa.Table, as_of: date, history: pd.DataFrame | None = None) -> pa.Table:
    """Feature table of a validated snapshot (contract schema) at ``as_of``."""
    if history is None:
        from pipelines.data.macro import load_history

        history = load_history()
    columns: dict[str, np.ndarray | pa.ChunkedArray] = {name: loans.column(name) for name in PASS_THROUGH}
    values = {name: loans.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False) for name in AS_FLOAT}
    columns.update(values)
    age_months = _months_between(loans.column("LoanStartDate"), as_of)
    months_left = -_months_between(loans.column("LoanMaturityDate"), as_of)
    remaining = np.maximum(np.ceil(months_left / MONTHS_PER_QUARTER), 0).astype(np.int32)
    codes = schedule_codes(loans.column("RepaymentSchedule").to_numpy(zero_copy_only=False))
    balance = values["CurrentBalance"]
    # The regular instalment (no balloon), the payment DSTI measures in the projection too.
    payment = project_quarter(balance, values["InterestRate"], np.maximum(remaining, 1), codes).scheduled_payment
    with np.errstate(divide="ignore", invalid="ignore"):
        # Combined LTV: liens ahead of a junior lien count (an empty SeniorLienBalance is none); NaN if unsecured.
        ltv = (np.nan_to_num(values["SeniorLienBalance"]) + balance) / values["CollateralValue"]
    columns |= {
        "ScheduleCode": codes,
        "LoanAgeQuarters": np.maximum(age_months // MONTHS_PER_QUARTER, 0).astype(np.int32),
        "RemainingQuarters": remaining,
        "QuarterlyPayment": payment,
        "DebtServiceToIncome": debt_service_to_income(payment * QUARTERS_PER_YEAR, values["BorrowerIncome"]),
        "IncomeMissing": income_missing(values["BorrowerIncome"]),
        "LoanToValue": ltv,
        "IsVariableRate": (loans.column("RateType").to_numpy(zero_copy_only=False) == "variable"),
    }
    macro = jump_off_macro(as_of, history)
    columns |= {f"macro_{name}": np.full(loans.num_rows, float(value)) for name, value in macro.items()}
    table = pa.table(columns)
    return table.replace_schema_metadata({"as_of": as_of.isoformat(), "macro_quarter": macro.attrs["quarter"]})


def history_income_missing(history: pd.DataFrame) -> np.ndarray:
    """Rows of a performance history whose DSTI is unknown: no finite DSTI, or a missing or zero income."""
    dsti = pd.to_numeric(history["DSTI"]).to_numpy(dtype=np.float64, na_value=np.nan)
    unknown = ~np.isfinite(dsti)
    if "BorrowerIncome" in history.columns:
        unknown |= income_missing(pd.to_numeric(history["BorrowerIncome"]).to_numpy(dtype=np.float64,
                                                                                      na_value=np.nan))
    return unknown


def history_pd_features(history: pd.DataFrame) -> pd.DataFrame:
    """The PD model inputs (:data:`models.projection.PD_FEATURES`) of a performance history panel.

    A row without a usable DSTI (:func:`history_income_missing`) gets :data:`MISSING_INCOME_DSTI`, the value
    the engine scores such loans with, so the model is trained on what it will be asked.
    """
    missing = [name for name in PD_FEATURES if name not in history.columns]
    if missing:
        raise ValueError(f"performance history lacks PD feature columns {missing}")
    features = history[list(PD_FEATURES)].copy()
    features["DSTI"] = np.where(history_income_missing(history), MISSING_INCOME_DSTI,
                                pd.to_numeric(history["DSTI"]).to_numpy(dtype=np.float64, na_value=np.nan))
    return features
