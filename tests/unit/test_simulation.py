"""The stress engine end to end on small books: batching invariance, zero shock, monotone rate shocks."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from models.lgd import UNSECURED_LGD
from models.pd_logistic import MacroLogisticPD
from models.portfolio_loss import DEFAULT_FACTOR_MODEL, DEFAULT_FACTOR_PERSISTENCE, ExposureHistogram, FactorModel
from pipelines.data.contract import Segment
from pipelines.data.features import build_features, history_pd_features
from pipelines.data.macro import load_history
from pipelines.data.synthetic import generate_loan_book, generate_performance_history
from pipelines.engine.scenarios import rate_shock_scenario, resolve_scenario
from pipelines.engine.simulation import (
    SELF_CHECK_MAX_Z,
    SimulationConfig,
    loan_keys,
    plan_batches,
    reduce_scenario,
    self_check,
    simulate_batch,
    simulation_id,
)
from pipelines.settings import StressSettings

AS_OF = date(2025, 12, 31)
CONFIG = SimulationConfig(n_paths=400, seed=5)


@pytest.fixture(scope="module")
def history() -> object:
    return load_history()


@pytest.fixture(scope="module")
def pd_model() -> MacroLogisticPD:
    panel = generate_performance_history(4000, seed=3)
    return MacroLogisticPD().fit(history_pd_features(panel), panel["DefaultFlag"].to_numpy())


@pytest.fixture(scope="module")
def features() -> pa.Table:
    return build_features(generate_loan_book(1600, seed=9, as_of=AS_OF), AS_OF)


def run(features: pa.Table, scenario, history, pd_model, n_batches: int) -> dict:
    size = -(-features.num_rows // n_batches)
    parts = [simulate_batch(features.slice(b["start"], b["stop"] - b["start"]), scenario, history, pd_model, CONFIG)
             for b in plan_batches(features.num_rows, size)]
    assert len(parts) == n_batches
    result = reduce_scenario([p.histogram for p in parts], [p.aggregates for p in parts], scenario, CONFIG)
    result["loans_table"] = pa.concat_tables([p.loans for p in parts])
    return result


def test_results_identical_for_1_4_and_16_batches(features, history, pd_model):
    scenario = resolve_scenario("2026_severely_adverse")
    results = [run(features, scenario, history, pd_model, n) for n in (1, 4, 16)]
    reference = results[0]
    for other in results[1:]:
        # Monte Carlo measures are bit-identical: the exposure histograms are exact integer sums.
        assert other["var"] == reference["var"]
        assert other["expected_shortfall"] == reference["expected_shortfall"]
        assert other["loss_distribution"] == reference["loss_distribution"]
        assert other["loans_table"].equals(reference["loans_table"])
        # Expected-value aggregates are float sums in a different order: equal to rounding.
        assert other["expected_loss"] == pytest.approx(reference["expected_loss"], rel=1e-12)
        assert other["capital"]["min_cet1_ratio"] == pytest.approx(reference["capital"]["min_cet1_ratio"],
                                                                   rel=1e-12)


def test_zero_shock_reproduces_the_baseline(features, history, pd_model):
    baseline = resolve_scenario("2026_baseline")
    zero = rate_shock_scenario("2026_baseline", 0.0, 9, history)
    assert np.array_equal(zero.path.to_numpy(), baseline.path.to_numpy())
    a = simulate_batch(features, baseline, history, pd_model, CONFIG)
    b = simulate_batch(features, zero, history, pd_model, CONFIG)
    assert a.loans.equals(b.loans)
    assert a.aggregates == b.aggregates


@pytest.fixture(scope="module")
def variable_rate_book(features) -> pa.Table:
    return features.filter(pa.compute.equal(features.column("IsVariableRate"), True))


def test_larger_rate_shock_never_lowers_losses_on_variable_rate_loans(variable_rate_book, history, pd_model):
    assert variable_rate_book.num_rows > 100
    losses = []
    for shock in (0, 100, 200, 400, 800):
        scenario = rate_shock_scenario("2026_baseline", shock, 9, history)
        part = simulate_batch(variable_rate_book, scenario, history, pd_model, CONFIG)
        losses.append(part.loans.column("ExpectedLoss").to_numpy())
    totals = [float(loss.sum()) for loss in losses]
    assert totals == sorted(totals)
    assert totals[-1] > totals[0]
    # Loan by loan too: a rate rise never lowers any single variable-rate loan's expected loss.
    for lower, higher in itertools.pairwise(losses):
        assert np.all(higher >= lower - 1e-9)


def test_severely_adverse_is_worse_than_baseline(features, history, pd_model):
    base = run(features, resolve_scenario("2026_baseline"), history, pd_model, 1)
    severe = run(features, resolve_scenario("2026_severely_adverse"), history, pd_model, 1)
    assert severe["expected_loss"] > base["expected_loss"]
    # The jump-off is the same bank in both; every projected quarter is worse under the severe scenario.
    assert severe["capital"]["cet1_ratio"][0] == base["capital"]["cet1_ratio"][0]
    assert np.all(np.array(severe["capital"]["cet1_ratio"][1:]) < np.array(base["capital"]["cet1_ratio"][1:]))
    assert severe["capital"]["min_cet1_ratio"] <= base["capital"]["min_cet1_ratio"]


def test_outputs_obey_their_invariants(features, history, pd_model):
    result = run(features, resolve_scenario("2026_severely_adverse"), history, pd_model, 4)
    loans = result["loans_table"]
    pd_cumulative = loans.column("ProjectedDefaultRisk").to_numpy()
    assert np.all((pd_cumulative >= 0) & (pd_cumulative <= 1))
    assert np.all(loans.column("ProjectedBalance").to_numpy() >= 0)
    # The Monte Carlo mean agrees with the analytic expected loss within its sampling error.
    check = result["self_check"]
    assert check["passed"] and abs(check["z"]) <= SELF_CHECK_MAX_Z
    assert (check["el_analytic"], check["el_mc"]) == (result["expected_loss"], result["expected_loss_mc"])
    assert sum(result["loss_by_segment"].values()) == pytest.approx(result["expected_loss"], rel=1e-9)


def biased(histogram: ExposureHistogram, factor: float) -> ExposureHistogram:
    """The histogram of an engine whose loss weights are off by ``factor``: its MC EL is biased."""
    return replace(histogram, weight=np.rint(histogram.weight * factor).astype(np.int64),
                   weight_sq=np.rint(histogram.weight_sq * factor**2).astype(np.int64),
                   exact=replace(histogram.exact, weight=histogram.exact.weight * factor))


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_self_check_fails_when_the_monte_carlo_el_is_biased(features, history, pd_model, factor):
    # 400 paths on 1,600 loans: SE is about 4 % of EL, so a 30 % bias is 7 standard errors (10 % would not be caught).
    scenario = resolve_scenario("2026_severely_adverse")
    part = simulate_batch(features, scenario, history, pd_model, CONFIG)
    honest = reduce_scenario([part.histogram], [part.aggregates], scenario, CONFIG)["self_check"]
    check = reduce_scenario([biased(part.histogram, factor)], [part.aggregates], scenario, CONFIG)["self_check"]
    assert honest["passed"]
    assert not check["passed"]
    assert np.sign(check["z"]) == np.sign(factor - 1.0)
    assert check["el_mc"] == pytest.approx(factor * honest["el_mc"], rel=1e-3)


def test_self_check_z_and_its_edge_cases():
    at_threshold = self_check(100.0, 104.0, 1.0)
    assert at_threshold["z"] == 4.0 and at_threshold["passed"]
    assert self_check(100.0, 95.9, 1.0)["z"] == pytest.approx(-4.1) and not self_check(100.0, 95.9, 1.0)["passed"]
    assert self_check(0.0, 0.0, 0.0)["passed"]  # a book without risk: no spread, exact
    assert not self_check(1.0, 2.0, 0.0)["passed"]
    assert not self_check(1.0, 2.0, float("nan"))["passed"]  # one path: no error estimate


def test_simulation_id_is_deterministic_and_sensitive():
    scenario = resolve_scenario("2026_baseline")
    first = simulation_id("snap", scenario, "v1", CONFIG)
    assert first == simulation_id("snap", scenario, "v1", CONFIG)
    assert first != simulation_id("snap", scenario, "v2", CONFIG)
    assert first != simulation_id("snap", resolve_scenario("2026_severely_adverse"), "v1", CONFIG)
    assert first != simulation_id("snap", scenario, "v1", replace(CONFIG, factor_persistence=1.0))
    assert first != simulation_id("snap", scenario, "v1", replace(CONFIG, factor_model=FactorModel.QUARTERLY_AR1))


def test_factor_persistence_comes_from_the_settings(monkeypatch):
    # The setting's default is the engine's (settings.py does not import the numerical stack).
    assert StressSettings().factor_persistence == DEFAULT_FACTOR_PERSISTENCE == SimulationConfig().factor_persistence
    monkeypatch.setenv("STRESS_FACTOR_PERSISTENCE", "1")
    assert StressSettings().factor_persistence == 1.0
    monkeypatch.setenv("STRESS_FACTOR_PERSISTENCE", "1.5")
    with pytest.raises(ValueError):
        StressSettings()


def test_factor_model_comes_from_the_settings(monkeypatch):
    assert FactorModel(StressSettings().factor_model) is DEFAULT_FACTOR_MODEL is SimulationConfig().factor_model
    monkeypatch.setenv("STRESS_FACTOR_MODEL", "quarterly_ar1")
    assert FactorModel(StressSettings().factor_model) is FactorModel.QUARTERLY_AR1
    monkeypatch.setenv("STRESS_FACTOR_MODEL", "brownian")
    with pytest.raises(ValueError):
        StressSettings()


def test_batches_binned_for_another_factor_model_are_refused(features, history, pd_model):
    scenario = resolve_scenario("2026_baseline")
    part = simulate_batch(features.slice(0, 200), scenario, history, pd_model, CONFIG)
    with pytest.raises(ValueError, match="factor model"):
        reduce_scenario([part.histogram], [part.aggregates], scenario,
                        replace(CONFIG, factor_model=FactorModel.QUARTERLY_AR1))


def test_more_persistent_factors_raise_the_tail_not_the_mean(features, history, pd_model):
    # A persistent factor makes bad quarters follow bad quarters: a fatter tail of the horizon loss, same EL.
    scenario = resolve_scenario("2026_severely_adverse")
    quarterly = replace(CONFIG, factor_model=FactorModel.QUARTERLY_AR1)
    part = simulate_batch(features, scenario, history, pd_model, quarterly)
    results = [reduce_scenario([part.histogram], [part.aggregates], scenario,
                               replace(quarterly, factor_persistence=phi)) for phi in (0.0, 1.0)]
    assert results[1]["var"]["0.990"] > 1.2 * results[0]["var"]["0.990"]
    assert all(r["self_check"]["passed"] for r in results)


def test_plan_batches_cover_every_loan_once():
    batches = plan_batches(1001, 250)
    covered = np.concatenate([np.arange(b["start"], b["stop"]) for b in batches])
    assert np.array_equal(covered, np.arange(1001))
    with pytest.raises(ValueError):
        plan_batches(0, 10)


def fnv1a_64(text: str) -> int:
    """64-bit FNV-1a of the UTF-8 bytes, byte by byte: an independent implementation of the published hash."""
    value = 0xCBF29CE484222325
    for octet in text.encode():
        value = ((value ^ octet) * 0x100000001B3) % 2**64
    return value


def test_loan_keys_are_the_fnv1a_hash_of_the_id_alone():
    ids = ["L1", "LOAN-000000123", "prêt-7", ""]
    keys = loan_keys(pa.chunked_array([ids[:2], ids[2:]]))
    assert keys.tolist() == [fnv1a_64(loan_id) for loan_id in ids]
    assert loan_keys(pa.array(["L1"])).tolist() == keys[:1].tolist()  # no dependence on the batch's other ids


def with_days_past_due(features: pa.Table, rows: np.ndarray, days: int) -> pa.Table:
    """The feature table with ``rows`` set ``days`` past due and a stale, low bank PD (the score lags arrears)."""
    dpd = features.column("DaysPastDue").to_numpy().copy()
    score = features.column("DefaultRiskScore").to_numpy().copy()
    dpd[rows], score[rows] = days, 0.01
    table = features.set_column(features.schema.get_field_index("DaysPastDue"), "DaysPastDue", pa.array(dpd))
    return table.set_column(table.schema.get_field_index("DefaultRiskScore"), "DefaultRiskScore", pa.array(score))


def test_loans_90_days_past_due_are_lost_in_the_first_quarter_and_weighted_150_percent(features, history, pd_model):
    # Unsecured personal loans (fixed LGD, no collateral, no undrawn line) 90 and 120 days past due: whatever the
    # PD model says, each loses its whole balance x LGD in quarter 1 and nothing after; standardized RWA 150 %.
    segment = features.column("ProductSegment").to_numpy(zero_copy_only=False)
    dpd = features.column("DaysPastDue").to_numpy()
    current = np.flatnonzero((segment == Segment.PERSONAL.value) & (dpd == 0))[:6]
    book = with_days_past_due(features.take(current), np.arange(3), 90)
    book = with_days_past_due(book, np.arange(3, 6), 0)
    scenario = resolve_scenario("2026_severely_adverse")
    batch = simulate_batch(book, scenario, history, pd_model, CONFIG)
    balance = book.column("CurrentBalance").to_numpy()
    quarterly_pd = np.array(batch.loans.column("QuarterlyPD").to_pylist())
    np.testing.assert_array_equal(quarterly_pd[:3], np.eye(1, scenario.horizon).repeat(3, axis=0))
    assert np.all(quarterly_pd[3:, 0] < 0.5)
    lgd = UNSECURED_LGD[Segment.PERSONAL]
    np.testing.assert_allclose(batch.loans.column("ExpectedLoss").to_numpy()[:3], balance[:3] * lgd, rtol=1e-12)
    np.testing.assert_allclose(batch.loans.column("ProjectedDefaultRisk").to_numpy()[:3], 1.0)
    rwa = batch.aggregates["standardized_rwa_drawn"][Segment.PERSONAL.value][0]
    assert rwa == pytest.approx(1.5 * balance[:3].sum() + 1.0 * balance[3:].sum(), rel=1e-12)
    result = reduce_scenario([batch.histogram], [batch.aggregates], scenario, CONFIG)
    assert result["defaulted_at_jump_off"] == {"loans": 3, "balance": pytest.approx(balance[:3].sum()),
                                               "loss": pytest.approx(balance[:3].sum() * lgd, rel=1e-12)}
    assert result["loss_by_quarter"][0] >= balance[:3].sum() * lgd


def test_loans_without_income_are_counted_in_the_results(features, history, pd_model):
    income = features.column("BorrowerIncome").to_numpy().copy()
    income[[3, 7]] = 0.0
    book = features.set_column(features.schema.get_field_index("BorrowerIncome"), "BorrowerIncome", pa.array(income))
    scenario = resolve_scenario("2026_baseline")
    batch = simulate_batch(book, scenario, history, pd_model, CONFIG)
    result = reduce_scenario([batch.histogram], [batch.aggregates], scenario, CONFIG)
    assert result["data_warnings"] == {"income_missing_loans": 2}


def test_a_fixed_rate_annuity_loans_balance_path_is_its_amortisation_schedule(features, history, pd_model):
    """A 100,000 loan at 6 % fixed with 6 quarters left, through the engine: the stored quarterly balance is the
    annuity schedule by hand (contractual, not weighted by survival), zero once repaid, and ends at
    ProjectedBalance."""
    schedule = features.column("ScheduleCode").to_numpy()
    fixed = ~features.column("IsVariableRate").to_numpy(zero_copy_only=False)
    row = int(np.flatnonzero((schedule == 0) & fixed & (features.column("DaysPastDue").to_numpy() == 0))[0])
    loan = features.slice(row, 1)
    for name, value in (("CurrentBalance", 100_000.0), ("InterestRate", 0.06)):
        loan = loan.set_column(loan.schema.get_field_index(name), name, pa.array([value]))
    loan = loan.set_column(loan.schema.get_field_index("RemainingQuarters"), "RemainingQuarters",
                           pa.array([6], pa.int32()))
    scenario = resolve_scenario("2026_severely_adverse")
    batch = simulate_batch(loan, scenario, history, pd_model, CONFIG)
    # 1.5 % a quarter over 6 quarters: payment 100,000 x 0.015 / (1 - 1.015^-6) = 17,552.52.
    payment = 100_000.0 * 0.015 / (1.0 - 1.015 ** -6)
    assert payment == pytest.approx(17_552.52, abs=0.005)
    by_hand = [round(100_000.0 * 1.015 ** k - payment * (1.015 ** k - 1.0) / 0.015, 2) for k in range(1, 7)]
    assert by_hand[0] == pytest.approx(83_947.48, abs=0.005)
    path = batch.loans.column("QuarterlyBalance").to_pylist()[0]
    assert len(path) == scenario.horizon == 9
    np.testing.assert_allclose(path[:6], by_hand, atol=0.011)
    assert path[5] == pytest.approx(0.0, abs=0.011) and path[6:] == [0.0, 0.0, 0.0]
    assert path[-1] == batch.loans.column("ProjectedBalance").to_pylist()[0]
    assert min(batch.loans.column("QuarterlyPD").to_pylist()[0][:6]) > 0  # a survival weight would lower it
