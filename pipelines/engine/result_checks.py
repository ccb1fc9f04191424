"""Great Expectations checks on simulation results before anyone reads them.

Two suites, generated here and kept in ``expectations/``: per-loan results (PDs in [0, 1], balances
and expected losses non-negative) and the per-scenario Monte Carlo self-check: the Monte Carlo
expected loss within ``SELF_CHECK_MAX_Z`` standard errors of the analytic one (see
:func:`pipelines.engine.simulation.self_check`). A broken check fails the task: a stress result that is
wrong must never reach a report.

Orderings of the risk measures (VaR 99.9 % >= VaR 99 %, ES >= VaR, ES >= EL, ...) are not checked
here: they are identities of the estimators of :mod:`models.loss_statistics` on one sample, true
whatever the engine does, so they could only fail on a bug that the unit tests of those
estimators catch. The self-check instead fails when the engine's loss distribution has the wrong
mean.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from pipelines.data.gx import expectation, run_gx_suite
from pipelines.engine.simulation import SELF_CHECK_MAX_Z
from pipelines.settings import REPO_ROOT

LOAN_SUITE_PATH = REPO_ROOT / "expectations" / "simulation_loan_results.json"
MEASURE_SUITE_PATH = REPO_ROOT / "expectations" / "simulation_risk_measures.json"


class ResultCheckError(ValueError):
    """A simulation result broke a check; the message names the expectation and the values."""


def loan_suite_dict() -> dict[str, Any]:
    return {"name": "simulation_loan_results", "expectations": [
        expectation("expect_column_values_to_not_be_null", column="ProjectedDefaultRisk"),
        expectation("expect_column_values_to_be_between", column="ProjectedDefaultRisk", min_value=0, max_value=1),
        expectation("expect_column_values_to_be_between", column="ProjectedBalance", min_value=0),
        expectation("expect_column_values_to_be_between", column="ExpectedLoss", min_value=0),
        expectation("expect_column_values_to_be_unique", column="LoanId"),
    ]}


def measure_suite_dict() -> dict[str, Any]:
    return {"name": "simulation_risk_measures", "expectations": [
        expectation("expect_column_values_to_not_be_null", column="self_check_z"),
        expectation("expect_column_values_to_be_between", column="self_check_z", min_value=-SELF_CHECK_MAX_Z,
                     max_value=SELF_CHECK_MAX_Z),
    ]}


def write_suites() -> None:
    for path, suite in ((LOAN_SUITE_PATH, loan_suite_dict()), (MEASURE_SUITE_PATH, measure_suite_dict())):
        path.write_text(json.dumps(suite, indent=2) + "\n")


def measures_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per scenario with its self-check (analytic and Monte Carlo EL, standard error, z)."""
    return pd.DataFrame([{
        "scenario_id": r["metrics"]["scenario_id"],
        **{f"self_check_{key}": r["metrics"]["self_check"][key] for key in ("el_analytic", "el_mc",
                                                                           "mc_standard_error", "z")},
    } for r in results])


def check_results(results: list[dict[str, Any]], loan_tables: list[pd.DataFrame]) -> dict[str, Any]:
    """Run both suites; raise :class:`ResultCheckError` on any failure, else return the counts checked."""
    checks = [(json.loads(MEASURE_SUITE_PATH.read_text()), measures_frame(results).set_index("scenario_id"), True)]
    checks += [(json.loads(LOAN_SUITE_PATH.read_text()), table, False) for table in loan_tables]
    failures = []
    for suite, frame, by_scenario in checks:
        for outcome in run_gx_suite(frame, suite):
            if not outcome["success"]:
                config = outcome["expectation_config"]
                result = outcome["result"]
                failures.append(f"{config['type']}({config['kwargs']}): "
                                f"{result.get('partial_unexpected_list', [])[:5]}"
                                + (f" in {result.get('unexpected_index_list', [])[:5]}" if by_scenario else ""))
    if failures:
        raise ResultCheckError("simulation results failed checks:\n" + "\n".join(failures))
    return {"scenarios": len(results), "loans_checked": int(sum(len(t) for t in loan_tables)),
            "expectations": sum(len(s["expectations"]) for s, _, _ in checks)}
