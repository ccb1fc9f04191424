"""Stress engine speed and memory on the standard workload, and against a dense NumPy engine."""

from __future__ import annotations

import time
from datetime import date

import numpy as np

from benchmarks.common import INPUTS, Timer, benchmark, peak_rss_mb

AS_OF = date(2025, 12, 31)
SCENARIOS = ("2026_baseline", "2026_severely_adverse", "rate_hike_300bp")
N_LOANS = 1_000_000
N_PATHS = 1000
HORIZON = 9
BATCH_SIZE = 250_000


def _features(n_loans: int):
    import pyarrow.parquet as pq

    from pipelines.data.features import build_features
    from pipelines.data.synthetic import generate_loan_book

    path = INPUTS / f"features_{n_loans}.parquet"
    if not path.exists():
        INPUTS.mkdir(parents=True, exist_ok=True)
        pq.write_table(build_features(generate_loan_book(n_loans, 1, AS_OF), AS_OF), path)
    return pq.read_table(path)


def _pd_model():
    from models.pd_logistic import MacroLogisticPD
    from pipelines.data.features import history_pd_features
    from pipelines.data.synthetic import generate_performance_history

    panel = generate_performance_history(10_000, seed=2)
    return MacroLogisticPD().fit(history_pd_features(panel), panel["DefaultFlag"].to_numpy())


@benchmark
def simulate_standard() -> dict[str, float]:
    """1,000,000 loans x 3 scenarios x 9 quarters x 1,000 paths through the engine, batch by batch."""
    from pipelines.data.macro import load_history
    from pipelines.engine.scenarios import resolve_scenario
    from pipelines.engine.simulation import SimulationConfig, plan_batches, reduce_scenario, simulate_batch

    features, model, history = _features(N_LOANS), _pd_model(), load_history()
    config = SimulationConfig(horizon=HORIZON, n_paths=N_PATHS)
    rss_before = peak_rss_mb()
    stage_seconds: dict[str, float] = {"project_and_bin_s": 0.0, "monte_carlo_and_reduce_s": 0.0}
    with Timer() as timer:
        for scenario_id in SCENARIOS:
            scenario = resolve_scenario(scenario_id, HORIZON, history)
            histograms, aggregates = [], []
            for batch in plan_batches(features.num_rows, BATCH_SIZE):
                started = time.perf_counter()
                part = simulate_batch(features.slice(batch["start"], batch["stop"] - batch["start"]), scenario,
                                      history, model, config)
                stage_seconds["project_and_bin_s"] += time.perf_counter() - started
                histograms.append(part.histogram)
                aggregates.append(part.aggregates)
            started = time.perf_counter()
            reduce_scenario(histograms, aggregates, scenario, config)
            stage_seconds["monte_carlo_and_reduce_s"] += time.perf_counter() - started
    work = N_LOANS * len(SCENARIOS) * HORIZON * N_PATHS
    return {"loans": N_LOANS, "scenarios": len(SCENARIOS), "quarters": HORIZON, "paths": N_PATHS,
            "wall_s": round(timer.seconds, 2), **{k: round(v, 2) for k, v in stage_seconds.items()},
            "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_simulation_mb": round(rss_before, 1),
            "loan_path_quarters_per_s": round(work / timer.seconds)}


@benchmark
def simulate_vs_dense() -> dict[str, float]:
    """The histogram engine against a dense loans x paths simulation on a book both can run."""
    from models.loss_statistics import summarise
    from models.portfolio_loss import ExposureHistogram, simulate_losses, simulate_losses_dense
    from models.projection import project_book
    from pipelines.data.macro import load_history
    from pipelines.engine.scenarios import resolve_scenario
    from pipelines.engine.simulation import CLASS_RHO, book_arrays, correlation_class, macro_path

    n_loans, n_paths = 20_000, N_PATHS
    features, model, history = _features(n_loans), _pd_model(), load_history()
    scenario = resolve_scenario("2026_severely_adverse", HORIZON, history)
    book = book_arrays(features)
    projection = project_book(book, macro_path(scenario, history), model)
    classes = correlation_class(book.segment_name, features.column("DefaultRiskScore").to_numpy())
    weights = projection.loss_weight * projection.survival_start
    with Timer() as engine_timer:
        histogram = ExposureHistogram.from_loans(classes, CLASS_RHO, projection.pd, weights, square_unit=1e4)
        engine = simulate_losses(histogram, n_paths, 7, scenario.scenario_id).sum(axis=1)
    with Timer() as dense_timer:
        dense = simulate_losses_dense(classes, CLASS_RHO, projection.pd, weights, n_paths, 7,
                                      scenario.scenario_id).sum(axis=1)
    levels = (0.99, 0.999)
    a, b = summarise(engine, levels), summarise(dense, levels)
    from scipy.stats import ks_2samp

    return {
        "loans": n_loans, "paths": n_paths, "quarters": HORIZON,
        "engine_s": round(engine_timer.seconds, 3), "dense_s": round(dense_timer.seconds, 3),
        "speedup": round(dense_timer.seconds / engine_timer.seconds, 1),
        "el_engine": round(a.expected_loss), "el_dense": round(b.expected_loss),
        "el_diff_in_se": round(abs(a.expected_loss - b.expected_loss)
                               / np.hypot(a.standard_error, b.standard_error), 2),
        "var99_rel_diff": round(abs(a.value_at_risk[0.99] / b.value_at_risk[0.99] - 1), 4),
        "es99_rel_diff": round(abs(a.expected_shortfall[0.99] / b.expected_shortfall[0.99] - 1), 4),
        "ks_pvalue": round(float(ks_2samp(engine, dense).pvalue), 4),
    }
