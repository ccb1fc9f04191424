"""The headline figures of a scenario result: the few numbers that travel where the full result cannot.

A simulation result (``runs/<run>/results/<scenario>/simulation_result.json``) holds the whole loss
distribution, capital paths and segment tables. XCom, the results asset's events and the run's
report output carry only these figures, so the Airflow UI shows a run's outcome without anyone
opening a file, and no task pushes more than a few KB into the metadata database.
"""

from __future__ import annotations

from typing import Any


def headline_figures(result: dict[str, Any]) -> dict[str, Any]:
    """Expected loss, loss rate, VaR 99.9 %, ES 99 % and minimum CET1 ratio of one scenario result."""
    metrics = result["metrics"]
    return {
        "simulation_id": result["SimulationId"],
        "loans": metrics["loans"],
        "exposure": round(metrics["exposure"], 2),
        "expected_loss": round(metrics["expected_loss"], 2),
        "loss_rate": round(metrics["loss_rate"], 8),
        "var_999": round(metrics["var"]["0.999"], 2),
        "expected_shortfall_99": round(metrics["expected_shortfall"]["0.990"], 2),
        "min_cet1_ratio": round(metrics["capital"]["min_cet1_ratio"], 8),
    }


def headline_by_scenario(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`headline_figures` of each result, by scenario id."""
    return {result["metrics"]["scenario_id"]: headline_figures(result) for result in results}
