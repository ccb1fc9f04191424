"""The optimiser's inputs from a real stress run: the capital path, the segment path losses, the task's document."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from models.optimisation import cet1_ratio_path, evaluate
from models.pd_logistic import MacroLogisticPD
from models.portfolio_loss import ExposureHistogram, simulate_losses
from pipelines.data.features import build_features, history_pd_features
from pipelines.data.macro import load_history
from pipelines.data.synthetic import generate_loan_book, generate_performance_history
from pipelines.engine.allocation import recommend
from pipelines.engine.optimisation_inputs import AppetiteError, build_inputs, load_appetite
from pipelines.engine.scenarios import resolve_scenario
from pipelines.engine.simulation import (
    SimulationConfig,
    plan_batches,
    reduce_scenario,
    segment_path_losses,
    simulate_batch,
)
from pipelines.settings import StressSettings

AS_OF = date(2025, 12, 31)
CONFIG = SimulationConfig(n_paths=400, seed=5)
MINIMUM, BUFFER, TAX = 0.045, 0.025, 0.21


@pytest.fixture(scope="module")
def stress_run() -> dict:
    history = load_history()
    panel = generate_performance_history(4000, seed=3)
    pd_model = MacroLogisticPD().fit(history_pd_features(panel), panel["DefaultFlag"].to_numpy())
    features = build_features(generate_loan_book(1600, seed=9, as_of=AS_OF), AS_OF)
    runs = {}
    for name in ("2026_severely_adverse", "2026_baseline"):
        scenario = resolve_scenario(name, CONFIG.horizon)
        by_batches = {}
        for size in (1600, 700):
            parts = [simulate_batch(features.slice(b["start"], b["stop"] - b["start"]), scenario, history, pd_model,
                                    CONFIG) for b in plan_batches(features.num_rows, size)]
            by_batches[size] = parts
        parts = by_batches[700]
        runs[name] = {
            "scenario": scenario, "parts": parts,
            "metrics": reduce_scenario([p.histogram for p in parts], [p.aggregates for p in parts], scenario, CONFIG),
            "segment_losses": segment_path_losses([p.segment_histogram for p in parts], scenario, CONFIG),
            "segment_losses_one_batch": segment_path_losses([p.segment_histogram for p in by_batches[1600]],
                                                            scenario, CONFIG),
        }
    return runs


def appetite(caps: dict[str, float] | None = None):
    """The default appetite with every segment allowed up to 80 % of this small book, or the given ``caps``."""
    default = load_appetite(StressSettings().optimisation_appetite_path)
    caps = caps or {}
    segments = {name: {**limits, "max_share": caps.get(name, 0.8)} for name, limits in default.segments.items()}
    return replace(default, segments=segments)


def inputs_of(stress_run: dict, caps: dict[str, float] | None = None):
    stress, baseline = stress_run["2026_severely_adverse"], stress_run["2026_baseline"]
    return build_inputs({"metrics": stress["metrics"]}, stress["segment_losses"], appetite(caps), MINIMUM,
                        BUFFER, TAX, {"metrics": baseline["metrics"]})


def test_the_current_book_reproduces_the_engine_cet1_path(stress_run):
    inputs = inputs_of(stress_run)
    capital = stress_run["2026_severely_adverse"]["metrics"]["capital"]
    ratios = cet1_ratio_path(inputs.assets, inputs.limits.capital, inputs.assets.current)
    np.testing.assert_allclose(ratios, capital["cet1_ratio"], rtol=1e-10)
    assert float(inputs.assets.rwa_density @ inputs.assets.current) == pytest.approx(capital["start_credit_rwa"])


def test_segment_path_losses_add_up_to_the_book_path_by_path(stress_run):
    run = stress_run["2026_severely_adverse"]
    book = simulate_losses(ExposureHistogram.sum(p.histogram for p in run["parts"]), CONFIG.n_paths, CONFIG.seed,
                           run["scenario"].scenario_id, persistence=CONFIG.factor_persistence,
                           idiosyncratic=False).sum(axis=1)
    segments = np.sum(list(run["segment_losses"].values()), axis=0)
    np.testing.assert_allclose(segments, book, rtol=2e-3)  # the same factor paths; only the binning differs
    assert set(run["segment_losses"]) == set(run["metrics"]["exposure_by_segment"])


def test_segment_path_losses_do_not_depend_on_the_batching(stress_run):
    run = stress_run["2026_severely_adverse"]
    for segment, losses in run["segment_losses"].items():
        np.testing.assert_array_equal(losses, run["segment_losses_one_batch"][segment])


def test_the_expected_loss_of_the_return_is_the_baseline_one(stress_run):
    inputs = inputs_of(stress_run)
    baseline = stress_run["2026_baseline"]["metrics"]
    assert float(inputs.assets.expected_loss @ inputs.assets.current) * inputs.assets.current.sum() == pytest.approx(
        baseline["expected_loss"] * inputs.assets.current.sum() * inputs.assets.current.sum()
        / sum(baseline["exposure_by_segment"].values()), rel=1e-9)


def test_the_recommendation_keeps_the_appetite(stress_run):
    inputs = inputs_of(stress_run)
    document = recommend(inputs, appetite())
    recommendation = document["recommendation"]
    assert recommendation["status"] == "optimal", recommendation
    new = recommendation["recommended"]
    assert new["exposure"] == pytest.approx(inputs.limits.budget, rel=1e-6)
    assert new["cvar"] <= inputs.limits.cvar_limit * (1 + 1e-6)
    assert new["min_cet1_ratio"] >= MINIMUM + BUFFER - 1e-9
    assert new["expected_return"] >= recommendation["current"]["expected_return"] - 1e-6 * inputs.limits.budget
    allocation = np.array([a["recommended"] for a in recommendation["assets"]])
    assert evaluate(inputs.assets, inputs.limits, allocation).cvar == pytest.approx(new["cvar"])
    assert document["frontier"] and set(document["strategies"]) == {"min_cvar", "max_return", "max_raroc",
                                                                     "risk_parity"}


def test_an_appetite_the_book_cannot_meet_is_reported_with_its_constraints(stress_run):
    # The book's largest segment capped at half of what it still holds after its 25 % run-off bound.
    assets = inputs_of(stress_run).assets
    largest = assets.names[int(np.argmax(assets.current))]
    caps = {largest: 0.5 * 0.75 * float(assets.current.max() / assets.current.sum())}
    document = recommend(inputs_of(stress_run, caps), appetite(caps))
    recommendation = document["recommendation"]
    assert recommendation["status"] == "infeasible"
    assert f"concentration {largest}" in recommendation["conflicting"]
    assert "minimum budget use" in recommendation["conflicting"]  # the rest of the book cannot grow enough


def test_a_malformed_appetite_names_the_field(tmp_path):
    path = tmp_path / "appetite.yaml"
    path.write_text("strategy: max_return\nsegments: {}\n")
    with pytest.raises(AppetiteError, match="missing field 'stress_scenario_suffix'"):
        load_appetite(path)
    default = StressSettings().optimisation_appetite_path.read_text()
    path.write_text(default.replace("strategy: max_return", "strategy: luck"))
    with pytest.raises(AppetiteError, match="strategy must be one of"):
        load_appetite(path)


