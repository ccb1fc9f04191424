"""Run-to-run attribution of the stress results (``docs/attribution.md``): the engine as the evaluator.

:func:`models.attribution.sequential_attribution` needs a deterministic function of (data, model,
scenario, parameters). The engine is one: its random streams are keyed by (seed, scenario,
quarter) and by loan, never by batch, so re-running it on a mix of two runs' inputs gives the
numbers a run with those inputs would have published. The evaluator here is the engine's own
simulate and reduce (:func:`scenario_measures`), so the bars of the waterfall are exact and the
residual is only what the current code does not reproduce of the previous run's published numbers
(a code change between the runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

from models.attribution import FACTORS, RESIDUAL, Input, Waterfall, sequential_attribution
from models.capital import PPNRModel
from models.portfolio_loss import FactorModel
from models.projection import PDFunction
from pipelines.engine.scenarios import Scenario
from pipelines.engine.simulation import (
    CapitalAssumptions,
    SimulationConfig,
    plan_batches,
    reduce_scenario,
    simulate_batch,
)
from pipelines.settings import CapitalApproach, RWAPath

NO_PREVIOUS_RUN = "no previous published run of this DAG: nothing to attribute"
# The measures attributed, read from a scenario's metrics (reduce_scenario).
MEASURES: dict[str, Callable[[dict[str, Any]], float]] = {
    "expected_loss": lambda metrics: metrics["expected_loss"],
    "var_999": lambda metrics: metrics["var"]["0.999"],
    "min_cet1_ratio": lambda metrics: metrics["capital"]["min_cet1_ratio"],
}


def run_parameters(config: SimulationConfig) -> dict[str, Any]:
    """The "parameters" factor of a run as plain JSON: every setting of the engine but the scenario's horizon
    (which travels with the scenario's path)."""
    capital = config.capital.fingerprint()
    return {"n_paths": config.n_paths, "seed": config.seed, "factor_model": str(config.factor_model),
            "factor_persistence": config.factor_persistence,
            "capital": capital | {"approach": str(config.capital.approach), "rwa_path": str(config.capital.rwa_path)}}


def config_from_parameters(parameters: dict[str, Any], horizon: int) -> SimulationConfig:
    """The :class:`SimulationConfig` of :func:`run_parameters` (the inverse, up to the horizon)."""
    capital = dict(parameters["capital"])
    assumptions = CapitalAssumptions(**capital | {"approach": CapitalApproach(capital["approach"]),
                                                  "rwa_path": RWAPath(capital["rwa_path"]),
                                                  "ppnr": PPNRModel(**capital["ppnr"])})
    return SimulationConfig(horizon=horizon, n_paths=int(parameters["n_paths"]), seed=int(parameters["seed"]),
                            capital=assumptions, factor_persistence=float(parameters["factor_persistence"]),
                            factor_model=FactorModel(parameters["factor_model"]))


def measures(metrics: dict[str, Any]) -> dict[str, float]:
    """The attributed measures of one scenario's published metrics."""
    return {name: float(read(metrics)) for name, read in MEASURES.items()}


def scenario_measures(features: pa.Table, scenario: Scenario, history: pd.DataFrame, pd_model: PDFunction,
                      config: SimulationConfig, batch_size: int) -> dict[str, float]:
    """The measures a run with these inputs publishes, by the engine's own simulate and reduce (batch by batch,
    so memory stays bounded; the result does not depend on ``batch_size``)."""
    parts = [simulate_batch(features.slice(b["start"], b["stop"] - b["start"]), scenario, history, pd_model, config)
             for b in plan_batches(features.num_rows, batch_size)]
    return measures(reduce_scenario([p.histogram for p in parts], [p.aggregates for p in parts], scenario, config))


class Loaders:
    """How the evaluator turns each factor's :class:`Input` into what the engine takes (I/O lives with the caller).

    Loaded inputs are kept, so each of the at most two values per factor is read once.
    """

    def __init__(self, features: Callable[[Any], pa.Table], pd_model: Callable[[Any], PDFunction],
                 scenario: Callable[[Any], Scenario], config: Callable[[Any], SimulationConfig]) -> None:
        self._load = {"data": features, "model": pd_model, "scenario": scenario, "parameters": config}
        self._cache: dict[tuple[str, str], Any] = {}

    def get(self, factor: str, item: Input) -> Any:
        if (factor, item.key) not in self._cache:
            self._cache[factor, item.key] = self._load[factor](item.value)
        return self._cache[factor, item.key]


def attribute_scenario(previous: Mapping[str, Input], current: Mapping[str, Input],
                       measured_previous: Mapping[str, float], measured_current: Mapping[str, float],
                       loaders: Loaders, history: pd.DataFrame, batch_size: int) -> dict[str, Waterfall]:
    """Waterfalls of one scenario's measures (:func:`measures`, as each run published them) between two runs."""
    def evaluate(point: Mapping[str, Input]) -> dict[str, float]:
        scenario = loaders.get("scenario", point["scenario"])
        return scenario_measures(loaders.get("data", point["data"]), scenario, history,
                                 loaders.get("model", point["model"]), loaders.get("parameters", point["parameters"]),
                                 batch_size)

    return sequential_attribution(evaluate, previous, current, measured_previous, measured_current, FACTORS)


def factor_inputs(inputs: dict[str, Any], run_id: str, scenario_id: str) -> dict[str, Input]:
    """One run's recorded inputs (``publish``'s run inputs) as the attribution compares and loads them."""
    data, model = inputs["data"], inputs["model"]
    return {
        "data": Input(json.dumps([data["snapshot_id"], data["as_of"]]), data["features_key"]),
        "model": Input(json.dumps([model["name"], str(model["version"])]), model),
        "scenario": Input(inputs["scenarios"][scenario_id], {"run_id": run_id, "scenario_id": scenario_id}),
        "parameters": Input(json.dumps(inputs["parameters"], sort_keys=True), inputs["parameters"]),
    }


def attribute_runs(previous: dict[str, Any], run_id: str, run_inputs: dict[str, Any],
                   results: list[dict[str, Any]], loaders: Loaders, history: pd.DataFrame,
                   batch_size: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The attribution of a run against ``previous`` (:meth:`ResultsStore.previous_published_run`: its id and
    recorded inputs, whose ``measures`` are what it published; the results store keeps only the latest result
    of identical inputs, so the previous run's own rows may be gone).

    Returns the outcome (per scenario: the factors that changed and a waterfall per measure; the scenarios
    only one run has; those whose previous inputs are gone) and the rows of the results store's table.
    """
    current = {r["metrics"]["scenario_id"]: measures(r["metrics"]) for r in results}
    earlier = previous["inputs"]["measures"]
    common = [s for s in current if s in earlier and s in previous["inputs"]["scenarios"]]
    scenarios: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for scenario_id in common:
        before = factor_inputs(previous["inputs"], previous["run_id"], scenario_id)
        after = factor_inputs(run_inputs, run_id, scenario_id)
        try:
            waterfalls = attribute_scenario(before, after, earlier[scenario_id], current[scenario_id], loaders,
                                            history, batch_size)
        except FileNotFoundError as error:  # the previous run's files were removed: say so, keep the report
            unavailable[scenario_id] = f"the previous run's inputs are not available: {error}"
            continue
        scenarios[scenario_id] = {"changed": [f for f in FACTORS if before[f] != after[f]],
                                  **{metric: w.to_dict() for metric, w in waterfalls.items()}}
        for metric, w in waterfalls.items():
            steps = [("previous", w.previous), *((step, w.bars[step]) for step in (*FACTORS, RESIDUAL)),
                     ("current", w.current)]
            rows += [{"scenario_id": scenario_id, "metric": metric, "step": step, "value": value}
                     for step, value in steps]
    outcome = {"previous_run_id": previous["run_id"], "order": [*FACTORS, RESIDUAL], "scenarios": scenarios,
               "only_in_this_run": [s for s in current if s not in common],
               "only_in_previous_run": sorted(set(earlier) - set(current)), "unavailable": unavailable}
    return outcome, rows
