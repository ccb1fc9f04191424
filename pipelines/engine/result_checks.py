"""Great Expectations checks on simulation results before anyone reads them.

Two suites, generated here and kept in ``expectations/``: per-loan results (PDs in [0, 1], balances
and expected losses non-negative) and the per-scenario risk measures (quantiles ordered, EL <= ES,
VaR below ES at the same level). A broken check fails the task: a stress result that breaks
arithmetic must never reach a report.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from pipelines.data.validation import run_gx_suite
from pipelines.settings import REPO_ROOT

LOAN_SUITE_PATH = REPO_ROOT / "expectations" / "simulation_loan_results.json"
MEASURE_SUITE_PATH = REPO_ROOT / "expectations" / "simulation_risk_measures.json"


class ResultCheckError(RuntimeError):
    """A simulation result broke a check; the message names the expectation and the values."""


def _expectation(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


def loan_suite_dict() -> dict[str, Any]:
    return {"name": "simulation_loan_results", "expectations": [
        _expectation("expect_column_values_to_not_be_null", column="ProjectedDefaultRisk"),
        _expectation("expect_column_values_to_be_between", column="ProjectedDefaultRisk", min_value=0, max_value=1),
        _expectation("expect_column_values_to_be_between", column="ProjectedBalance", min_value=0),
        _expectation("expect_column_values_to_be_between", column="ExpectedLoss", min_value=0),
        _expectation("expect_column_values_to_be_unique", column="LoanId"),
    ]}


def measure_suite_dict() -> dict[str, Any]:
    ordered = [("var_999", "var_990"), ("es_990", "es_975"), ("es_975", "expected_loss_mc"),
               ("es_990", "var_990"), ("var_999", "expected_loss_mc")]
    return {"name": "simulation_risk_measures", "expectations": [
        _expectation("expect_column_values_to_be_between", column="expected_loss", min_value=0),
        *[_expectation("expect_column_pair_values_a_to_be_greater_than_b", column_A=a, column_B=b, or_equal=True)
          for a, b in ordered],
    ]}


def write_suites() -> None:
    for path, suite in ((LOAN_SUITE_PATH, loan_suite_dict()), (MEASURE_SUITE_PATH, measure_suite_dict())):
        path.write_text(json.dumps(suite, indent=2) + "\n")


def measures_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per scenario with the measures the suite orders."""
    return pd.DataFrame([{
        "scenario_id": r["metrics"]["scenario_id"], "expected_loss": r["metrics"]["expected_loss"],
        "expected_loss_mc": r["metrics"]["expected_loss_mc"],
        "var_990": r["metrics"]["var"]["0.990"], "var_999": r["metrics"]["var"]["0.999"],
        "es_975": r["metrics"]["expected_shortfall"]["0.975"], "es_990": r["metrics"]["expected_shortfall"]["0.990"],
    } for r in results])


def check_results(results: list[dict[str, Any]], loan_tables: list[pd.DataFrame]) -> dict[str, Any]:
    """Run both suites; raise :class:`ResultCheckError` on any failure, else return the counts checked."""
    checks = [(json.loads(MEASURE_SUITE_PATH.read_text()), measures_frame(results))]
    checks += [(json.loads(LOAN_SUITE_PATH.read_text()), table) for table in loan_tables]
    failures = []
    for suite, frame in checks:
        for outcome in run_gx_suite(frame, suite):
            if not outcome["success"]:
                config = outcome["expectation_config"]
                failures.append(f"{config['type']}({config['kwargs']}): "
                                f"{outcome['result'].get('partial_unexpected_list', [])[:5]}")
    if failures:
        raise ResultCheckError("simulation results failed checks:\n" + "\n".join(failures))
    return {"scenarios": len(results), "loans_checked": int(sum(len(t) for t in loan_tables)),
            "expectations": sum(len(s["expectations"]) for s, _ in checks)}
