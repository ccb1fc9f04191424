"""The result checks fail a run whose Monte Carlo expected loss is off its analytic value."""

from __future__ import annotations

import pytest

from pipelines.engine.result_checks import ResultCheckError, check_results, measure_suite_dict
from pipelines.engine.simulation import SELF_CHECK_MAX_Z, self_check


def result(scenario_id: str, el_mc: float, standard_error: float = 10.0) -> dict:
    """A simulation result with only what the measure suite reads: the self-check of a 1,000 analytic EL."""
    return {"metrics": {"scenario_id": scenario_id, "self_check": self_check(1000.0, el_mc, standard_error)}}


def test_the_suite_checks_the_self_check_z_against_the_threshold():
    between = [e for e in measure_suite_dict()["expectations"] if e["type"] == "expect_column_values_to_be_between"]
    assert between == [{"type": "expect_column_values_to_be_between", "kwargs": {
        "column": "self_check_z", "min_value": -SELF_CHECK_MAX_Z, "max_value": SELF_CHECK_MAX_Z}}]


def test_unbiased_monte_carlo_passes():
    outcome = check_results([result("baseline", 1012.0), result("severe", 965.0)], [])
    assert outcome["scenarios"] == 2


def test_biased_monte_carlo_fails_the_run_and_names_the_scenario():
    with pytest.raises(ResultCheckError, match="self_check_z") as error:
        check_results([result("baseline", 1012.0), result("severe", 1200.0)], [])
    assert "severe" in str(error.value) and "baseline" not in str(error.value)
    with pytest.raises(ResultCheckError, match="self_check_z"):
        check_results([result("exact_but_no_error", 1001.0, standard_error=0.0)], [])
