"""Stress engine speed and memory on the standard workload, and against a dense NumPy engine."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

import numpy as np

from benchmarks.common import INPUTS, Timer, benchmark, peak_rss_mb

AS_OF = date(2025, 12, 31)
SCENARIOS = ("2026_baseline", "2026_severely_adverse", "rate_hike_300bp")
N_LOANS = 1_000_000
N_PATHS = 1000
HORIZON = 9
BATCH_SIZE = 250_000
# simulate_vs_dense: books, paths (the dense engine costs loans x paths), seed and levels.
DENSE_SCENARIO = "2026_severely_adverse"
DENSE_LOANS = 20_000
DENSE_PATHS = {"synthetic_20k": 2000, "20_loans": 100_000, "200_lognormal": 50_000}
DENSE_SEED = 7
DENSE_LEVELS = (0.99, 0.999)
# tail_accuracy: concentrated books (more loans than exact names, so the engine mixes its two parts) and paths.
TAIL_PATHS = 20_000


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
    return {"loans": N_LOANS, "scenarios": len(SCENARIOS), "quarters": HORIZON, "paths": N_PATHS,
            "wall_s": round(timer.seconds, 2), **{k: round(v, 2) for k, v in stage_seconds.items()},
            "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_simulation_mb": round(rss_before, 1)}


@dataclass(frozen=True)
class _Book:
    """What both engines take: class per loan, and per loan and quarter the PD (hazard) and the loss at default."""

    classes: np.ndarray
    pd: np.ndarray
    weights: np.ndarray


def _projected_book(n_loans: int) -> _Book:
    """The synthetic book of ``n_loans`` projected under the 2026 severely adverse scenario."""
    from models.projection import project_book
    from pipelines.data.macro import load_history
    from pipelines.engine.scenarios import resolve_scenario
    from pipelines.engine.simulation import book_arrays, correlation_class, macro_path

    features, model, history = _features(n_loans), _pd_model(), load_history()
    book = book_arrays(features)
    projection = project_book(book, macro_path(resolve_scenario(DENSE_SCENARIO, HORIZON, history), history), model)
    classes = correlation_class(book.segment_name, features.column("DefaultRiskScore").to_numpy())
    return _Book(classes, projection.pd, projection.loss_weight)


def _concentrated_books(synthetic: _Book) -> dict[str, _Book]:
    """Small books where the idiosyncratic gamma approximation is tested hardest.

    ``20_loans``: 20 loans of the synthetic book as they are (their PDs, classes, loss weights).
    ``200_lognormal``: 200 loans of the synthetic book with their PDs and classes, and a loss weight
    (EAD x LGD) per loan drawn lognormal with sigma 1.5, the same in every quarter.
    """
    rng = np.random.default_rng(11)
    few = rng.choice(synthetic.pd.shape[0], 20, replace=False)
    some = rng.choice(synthetic.pd.shape[0], 200, replace=False)
    weights = np.repeat(rng.lognormal(np.log(1e5), 1.5, (200, 1)), synthetic.pd.shape[1], axis=1)
    return {"20_loans": _Book(synthetic.classes[few], synthetic.pd[few], synthetic.weights[few]),
            "200_lognormal": _Book(synthetic.classes[some], synthetic.pd[some], weights)}


def _engine_losses(book: _Book, n_paths: int, seed: int) -> np.ndarray:
    """Horizon losses per path of the histogram engine, binning included (as the reduce step runs it)."""
    from models.portfolio_loss import ExposureHistogram, simulate_losses
    from pipelines.engine.simulation import CLASS_RHO, SQUARE_UNIT

    histogram = ExposureHistogram.from_loans(book.classes, CLASS_RHO, book.pd, book.weights,
                                             loan_key=np.arange(book.pd.shape[0]), square_unit=SQUARE_UNIT)
    return simulate_losses(histogram, n_paths, seed, DENSE_SCENARIO).sum(axis=1)


def _dense_losses(book: _Book, n_paths: int, seed: int) -> np.ndarray:
    """Horizon losses per path of the dense reference, on the same loan keys as :func:`_engine_losses`."""
    from models.portfolio_loss import simulate_losses_dense
    from pipelines.engine.simulation import CLASS_RHO

    return simulate_losses_dense(book.classes, CLASS_RHO, book.pd, book.weights, n_paths, seed, DENSE_SCENARIO,
                                 loan_key=np.arange(book.pd.shape[0])).sum(axis=1)


@benchmark
def simulate_vs_dense() -> dict[str, float]:
    """The histogram engine against the dense Bernoulli reference on three books, two designs each.

    Per book: ``indep_*`` compares the engine and the dense simulation on independent seeds;
    ``crn_*`` on common random numbers (same systematic factors path by path). Each measure is
    given for both engines with its relative difference and ``z`` (difference / its Monte Carlo
    standard error); see :mod:`benchmarks.engine_comparison`. Losses are summed over the horizon.
    """
    from benchmarks.engine_comparison import compare_independent, compare_paired

    synthetic = _projected_book(DENSE_LOANS)
    books = {"synthetic_20k": synthetic, **_concentrated_books(synthetic)}
    figures: dict[str, float] = {"quarters": HORIZON}
    for name, book in books.items():
        n_paths = DENSE_PATHS[name]
        with Timer() as engine_timer:
            common = _engine_losses(book, n_paths, DENSE_SEED)
        with Timer() as dense_timer:
            dense = _dense_losses(book, n_paths, DENSE_SEED)
        independent = _engine_losses(book, n_paths, DENSE_SEED + 1)
        figures |= {f"{name}_loans": book.pd.shape[0], f"{name}_paths": n_paths,
                    f"{name}_engine_s": round(engine_timer.seconds, 3),
                    f"{name}_dense_s": round(dense_timer.seconds, 2),
                    **compare_independent(independent, dense, DENSE_LEVELS).figures(f"{name}_indep"),
                    **compare_paired(common, dense, DENSE_LEVELS).figures(f"{name}_crn")}
    return figures


def _tail_books(synthetic: _Book) -> dict[str, _Book]:
    """Books with name concentration and more loans than the engine simulates exactly (256).

    ``one_third_of_2000``: 2,000 loans of the synthetic book, the largest loss weight raised to half
    the others' sum (a third of the book). ``pareto_1000``: 1,000 loans with Pareto (alpha 1.2) loss
    weights, the same in every quarter. ``five_large_of_5000``: 5,000 loans and five of them with about 5 %
    of the book each.
    """
    rng = np.random.default_rng(12)

    def sample(n_loans: int) -> _Book:
        rows = rng.choice(synthetic.pd.shape[0], n_loans, replace=False)
        return _Book(synthetic.classes[rows], synthetic.pd[rows], synthetic.weights[rows].copy())

    one_third = sample(2000)
    largest = one_third.weights.max(axis=1).argmax()
    one_third.weights[largest] = np.delete(one_third.weights, largest, axis=0).sum(axis=0) / 2.0
    pareto = sample(1000)
    pareto = _Book(pareto.classes, pareto.pd, np.repeat(1e4 * (1.0 + rng.pareto(1.2, (1000, 1))), HORIZON, axis=1))
    five = sample(5000)
    five.weights[:5] = five.weights[5:].sum(axis=0) * 0.064
    return {"one_third_of_2000": one_third, "pareto_1000": pareto, "five_large_of_5000": five}


@benchmark
def tail_accuracy() -> dict[str, float]:
    """Engine vs exact (dense Bernoulli) VaR and ES on concentrated books, independent seeds and CRN.

    Figures as in ``simulate_vs_dense`` (engine / dense - 1 and z), at :data:`TAIL_PATHS` paths.
    """
    from benchmarks.engine_comparison import compare_independent, compare_paired

    figures: dict[str, float] = {"quarters": HORIZON, "paths": TAIL_PATHS}
    for name, book in _tail_books(_projected_book(DENSE_LOANS)).items():
        dense = _dense_losses(book, TAIL_PATHS, DENSE_SEED)
        largest_share = float(book.weights.max(axis=1).max() / book.weights.max(axis=1).sum())
        figures |= {f"{name}_loans": book.pd.shape[0], f"{name}_largest_share": round(largest_share, 3),
                    **compare_independent(_engine_losses(book, TAIL_PATHS, DENSE_SEED + 1), dense,
                                          DENSE_LEVELS).figures(f"{name}_indep"),
                    **compare_paired(_engine_losses(book, TAIL_PATHS, DENSE_SEED), dense,
                                     DENSE_LEVELS).figures(f"{name}_crn")}
    return figures
