"""Run-to-run attribution: hand-computed sequential substitution, the sum identity, and the engine as evaluator."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.attribution import FACTORS, RESIDUAL, Input, sequential_attribution
from models.pd_logistic import MacroLogisticPD
from pipelines.data.features import build_features, history_pd_features
from pipelines.data.macro import load_history
from pipelines.data.synthetic import generate_loan_book, generate_performance_history
from pipelines.engine.attribution import (
    Loaders,
    attribute_runs,
    attribute_scenario,
    config_from_parameters,
    measures,
    run_parameters,
    scenario_measures,
)
from pipelines.engine.scenarios import resolve_scenario
from pipelines.engine.simulation import CapitalAssumptions, SimulationConfig, reduce_scenario, simulate_batch
from pipelines.settings import CapitalApproach, RWAPath


def loss(point):
    """A toy evaluator with interactions: loss = data x model + scenario, capital = 10 - loss / parameters."""
    value = point["data"] * point["model"] + point["scenario"]
    return {"loss": value, "capital": 10.0 - value / point["parameters"]}


PREVIOUS = {"data": 1.0, "model": 1.0, "scenario": 0.0, "parameters": 1.0}


def test_sequential_substitution_by_hand():
    # Previous (1, 1, 0, 1): loss 1. Current (2, 3, 1, 2): loss 7. In the order data, model, scenario, parameters:
    # data 2x1+0 - 1 = 1; model 2x3+0 - 2 = 4 (the interaction goes to the later factor); scenario 7 - 6 = 1;
    # parameters 0 (loss does not read them). Capital: 9 -> 8.5 -> 4 -> 3 -> 6.5.
    current = {"data": 2.0, "model": 3.0, "scenario": 1.0, "parameters": 2.0}
    waterfalls = sequential_attribution(loss, PREVIOUS, current, {"loss": 1.0, "capital": 9.0},
                                        {"loss": 7.5, "capital": 6.5})
    assert waterfalls["loss"].bars == {"data": 1.0, "model": 4.0, "scenario": 1.0, "parameters": 0.0, RESIDUAL: 0.5}
    assert waterfalls["capital"].bars == {"data": -1.0, "model": -4.0, "scenario": -1.0, "parameters": 3.5,
                                          RESIDUAL: 0.0}
    assert waterfalls["loss"].change == 6.5  # measured: the residual (0.5) is what the evaluator did not explain


@pytest.mark.parametrize("factor", FACTORS)
def test_changing_one_factor_puts_the_whole_change_in_its_bar(factor):
    current = dict(PREVIOUS) | {factor: PREVIOUS[factor] + 2.0}
    measured_previous, measured_current = loss(PREVIOUS), loss(current)
    waterfall = sequential_attribution(loss, PREVIOUS, current, measured_previous, measured_current)["capital"]
    assert waterfall.bars[factor] == pytest.approx(waterfall.change)
    assert all(waterfall.bars[other] == 0.0 for other in (*FACTORS, RESIDUAL) if other != factor)


def test_nothing_changed_costs_no_evaluation_and_the_residual_is_the_measured_change():
    calls = []
    waterfall = sequential_attribution(lambda point: calls.append(point) or loss(point), PREVIOUS, PREVIOUS,
                                       {"loss": 1.0, "capital": 9.0}, {"loss": 1.25, "capital": 9.0})["loss"]
    assert calls == [] and waterfall.bars == dict.fromkeys(FACTORS, 0.0) | {RESIDUAL: 0.25}


def test_inputs_compare_by_key_not_by_what_they_carry():
    assert Input("snapshot-a", "runs/1/features.parquet") == Input("snapshot-a", "runs/2/features.parquet")
    assert Input("snapshot-a") != Input("snapshot-b")


def test_factors_and_measures_must_match():
    with pytest.raises(ValueError, match="factors"):
        sequential_attribution(loss, {**PREVIOUS, "weather": 1}, PREVIOUS, {"loss": 0}, {"loss": 0})
    with pytest.raises(ValueError, match="no previous value"):
        sequential_attribution(loss, PREVIOUS, PREVIOUS, {}, {"loss": 0})


values = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=4, max_size=4), st.lists(values, min_size=4, max_size=4), values, values)
def test_the_waterfall_sums_to_the_measured_change(before, after, measured_before, measured_after):
    previous, current = dict(zip(FACTORS, before, strict=True)), dict(zip(FACTORS, after, strict=True))

    def evaluate(point):
        return {"m": point["data"] * point["model"] - point["scenario"] ** 2 / 1e6 + 3 * point["parameters"]}

    waterfall = sequential_attribution(evaluate, previous, current, {"m": measured_before}, {"m": measured_after})["m"]
    scale = 1e-12 * (sum(abs(b) for b in waterfall.bars.values()) + abs(measured_before) + abs(measured_after) + 1.0)
    assert sum(waterfall.bars.values()) == pytest.approx(measured_after - measured_before, abs=scale)
    explained = evaluate(current)["m"] - evaluate(previous)["m"]
    magnitude = 1e-12 * (sum(abs(b) for b in waterfall.bars.values()) + abs(evaluate(previous)["m"]) + 1.0)
    assert sum(waterfall.bars[f] for f in FACTORS) == pytest.approx(explained, abs=magnitude)


# --- the engine as the evaluator ------------------------------------------------------------------------------

AS_OF = date(2025, 12, 31)
CONFIG = SimulationConfig(n_paths=200, seed=5)


@pytest.fixture(scope="module")
def history():
    return load_history()


@pytest.fixture(scope="module")
def pd_model():
    panel = generate_performance_history(3000, seed=3)
    return MacroLogisticPD().fit(history_pd_features(panel), panel["DefaultFlag"].to_numpy())


@pytest.fixture(scope="module")
def books() -> dict[str, pa.Table]:
    return {"a": build_features(generate_loan_book(600, seed=9, as_of=AS_OF), AS_OF),
            "b": build_features(generate_loan_book(700, seed=10, as_of=AS_OF), AS_OF)}


def published(features, scenario, history, pd_model, config):
    """The metrics a run publishes (one batch)."""
    batch = simulate_batch(features, scenario, history, pd_model, config)
    return reduce_scenario([batch.histogram], [batch.aggregates], scenario, config)


def test_the_evaluator_reproduces_a_run_whatever_the_batching(books, history, pd_model):
    scenario = resolve_scenario("2026_severely_adverse")
    expected = measures(published(books["a"], scenario, history, pd_model, CONFIG))
    assert scenario_measures(books["a"], scenario, history, pd_model, CONFIG, batch_size=128) == pytest.approx(
        expected, rel=1e-12)


def test_parameters_round_trip_through_json():
    config = SimulationConfig(horizon=9, n_paths=300, seed=7, factor_persistence=0.5,
                              capital=CapitalAssumptions(approach=CapitalApproach.IRB, rwa_path=RWAPath.PROJECTED,
                                                         starting_cet1_ratio=0.12))
    import json

    assert config_from_parameters(json.loads(json.dumps(run_parameters(config))), 9) == config


def engine_attribution(books, history, pd_model, previous, current):
    """Attribute between two points given as (book, scenario id, config), on the engine itself."""
    models = {"m": pd_model}
    loaders = Loaders(features=books.__getitem__, pd_model=models.__getitem__, scenario=resolve_scenario,
                      config=lambda parameters: config_from_parameters(parameters, 9))

    def inputs(point):
        book, scenario_id, config = point
        parameters = run_parameters(config)
        return {"data": Input(book, book), "model": Input("m", "m"), "scenario": Input(scenario_id, scenario_id),
                "parameters": Input(str(sorted(parameters.items())), parameters)}

    def measured(point):
        book, scenario_id, config = point
        return measures(published(books[book], resolve_scenario(scenario_id), history, pd_model, config))

    return attribute_scenario(inputs(previous), inputs(current), measured(previous), measured(current), loaders,
                              history, batch_size=256)


def test_a_new_book_alone_is_all_in_the_data_bar(books, history, pd_model):
    waterfalls = engine_attribution(books, history, pd_model, ("a", "2026_severely_adverse", CONFIG),
                                    ("b", "2026_severely_adverse", CONFIG))
    for waterfall in waterfalls.values():
        assert waterfall.change != 0.0
        assert waterfall.bars["data"] == pytest.approx(waterfall.change, rel=1e-9)
        assert waterfall.bars["model"] == waterfall.bars["scenario"] == waterfall.bars["parameters"] == 0.0
        assert abs(waterfall.bars[RESIDUAL]) <= 1e-9 * max(abs(waterfall.current), 1.0)


def test_a_new_seed_moves_the_simulated_var_not_the_expected_loss(books, history, pd_model):
    reseeded = SimulationConfig(n_paths=200, seed=6)
    waterfalls = engine_attribution(books, history, pd_model, ("a", "2026_baseline", CONFIG),
                                    ("a", "2026_severely_adverse", reseeded))
    loss, var = waterfalls["expected_loss"], waterfalls["var_999"]
    # The scenario raises the expected loss; the seed then leaves the analytic expected loss and capital alone.
    assert loss.bars["scenario"] == pytest.approx(loss.change, rel=1e-9) and loss.change > 0
    assert loss.bars["parameters"] == 0.0 and waterfalls["min_cet1_ratio"].bars["parameters"] == 0.0
    assert var.bars["parameters"] != 0.0
    assert sum(var.bars.values()) == pytest.approx(var.change, rel=1e-12)
    assert np.isclose(var.bars[RESIDUAL], 0.0, atol=1e-6 * var.current)


def test_the_previous_run_is_the_latest_other_published_run_of_the_same_dag(tmp_path):
    from pipelines.adapters.results_store import ResultsStore

    store = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    assert store.previous_published_run("loan_stress_test", "run-1") is None
    for run_id, dag_id in (("run-1", "loan_stress_test"), ("other", "another_dag"), ("run-2", "loan_stress_test")):
        store.publish_simulations([], run_id, dag_id, {"data": {"snapshot_id": run_id}})
    previous = store.previous_published_run("loan_stress_test", "run-2")
    assert (previous["run_id"], previous["inputs"]) == ("run-1", {"data": {"snapshot_id": "run-1"}})
    assert store.previous_published_run("loan_stress_test", "run-1") is None  # nothing was published before it
    assert store.previous_published_run("loan_stress_test", "run-3")["run_id"] == "run-2"  # not yet published
    store.save_attribution("run-2", "loan_stress_test", "run-1", [
        {"scenario_id": "s", "metric": "expected_loss", "step": step, "value": value}
        for step, value in (("previous", 1.0), ("data", 0.5), ("current", 1.5))])
    assert [(r["step"], r["value"], r["previous_run_id"]) for r in store.attribution_of_run("run-2", "loan_stress_test")
            ] == [("previous", 1.0, "run-1"), ("data", 0.5, "run-1"), ("current", 1.5, "run-1")]


def test_runs_are_attributed_scenario_by_scenario_from_their_recorded_inputs(books, history, pd_model):
    # Two recorded runs: the book changes, the baseline is in both, the rate shock only in the current one.
    scenario = resolve_scenario("2026_baseline")
    parameters = run_parameters(CONFIG)
    metrics = {book: published(books[book], scenario, history, pd_model, CONFIG) for book in books}

    def run(book, scenario_ids):
        inputs = {"data": {"snapshot_id": book, "as_of": "2025-12-31", "features_key": book},
                  "model": {"name": "loan_pd_model", "version": "1"},
                  "scenarios": dict.fromkeys(scenario_ids, scenario.fingerprint()), "parameters": parameters,
                  "measures": dict.fromkeys(scenario_ids, measures(metrics[book]))}
        return inputs, [{"metrics": metrics[book] | {"scenario_id": s}} for s in scenario_ids]

    previous_inputs, _ = run("a", ["2026_baseline"])
    current_inputs, current_results = run("b", ["2026_baseline", "rate_hike_300bp"])
    loaders = Loaders(features=books.__getitem__, pd_model=lambda info: pd_model,
                      scenario=lambda where: resolve_scenario(where["scenario_id"]),
                      config=lambda p: config_from_parameters(p, 9))
    outcome, rows = attribute_runs({"run_id": "run-1", "inputs": previous_inputs},
                                   "run-2", current_inputs, current_results, loaders, history, 512)
    assert outcome["previous_run_id"] == "run-1" and outcome["only_in_this_run"] == ["rate_hike_300bp"]
    baseline = outcome["scenarios"]["2026_baseline"]
    assert baseline["changed"] == ["data"]
    loss = baseline["expected_loss"]
    assert loss["bars"]["data"] == pytest.approx(loss["change"], rel=1e-9) != 0.0
    assert [(r["metric"], r["step"]) for r in rows[:7]] == [("expected_loss", step) for step in (
        "previous", "data", "model", "scenario", "parameters", "residual", "current")]
    assert len(rows) == 3 * 7


def test_the_demo_prints_no_previous_run_or_the_waterfall(capsys):
    from pipelines.cli.demo import print_attribution

    print_attribution({"previous_run_id": None, "scenarios": {}})
    assert "no previous run" in capsys.readouterr().out
    bars = {"data": 10.0, "model": -4.0, "scenario": 0.0, "parameters": 0.0, RESIDUAL: 0.0}
    waterfall = {"previous": 100.0, "current": 106.0, "change": 6.0, "bars": bars}
    ratio = {"previous": 0.12, "current": 0.11, "change": -0.01, "bars": dict.fromkeys(bars, 0.0) | {"data": -0.01}}
    print_attribution({"previous_run_id": "run-1", "scenarios": {"2026_baseline": {
        "changed": ["data", "model"], "expected_loss": waterfall, "var_999": waterfall, "min_cet1_ratio": ratio}}})
    out = capsys.readouterr().out
    assert "change since run run-1" in out and "changed data, model" in out
    assert "+10" in out and "-4" in out and "106" in out and "-1.00 pp" in out and "12.00 %" in out
