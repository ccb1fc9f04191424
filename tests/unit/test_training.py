"""Point-in-time target, out-of-time split with embargo, the history GX suite, and the promotion gate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.feature_spec import load_feature_spec
from models.projection import PD_FEATURES
from pipelines.model.promotion import PromotionPolicy, decide_promotion
from pipelines.model.training import (
    HISTORY_SUITE_PATH,
    build_history_suite,
    out_of_time_split,
    point_in_time_dataset,
    validate_history,
)

SPEC = load_feature_spec()
QUARTER_ENDS = pd.period_range("2015Q1", "2018Q4", freq="Q").to_timestamp(how="end").normalize()


def _panel(loans: dict[str, tuple[int, int, int | None]]) -> pd.DataFrame:
    """Loans as (first quarter position, last quarter position, default position or None)."""
    rows = []
    for loan, (first, last, default) in loans.items():
        for position in range(first, last + 1):
            rows.append({"LoanId": loan, "ObservationQuarter": QUARTER_ENDS[position],
                         "DefaultFlag": int(position == default)})
    frame = pd.DataFrame(rows)
    for column in PD_FEATURES:
        frame[column] = "auto" if column == "ProductSegment" else 1.0
    return frame


def test_target_looks_ahead_four_quarters_and_drops_unknown_outcomes():
    history = _panel({
        "defaults": (0, 6, 6),  # defaults in position 6 (the loan leaves after its default row)
        "survives": (0, 15, None),  # observed to the end of the panel (position 15)
        "prepays": (2, 5, None),  # leaves after position 5 without default
    })
    dataset = point_in_time_dataset(history, SPEC)
    dataset["position"] = QUARTER_ENDS.get_indexer(dataset["ObservationQuarter"])
    by_loan = {loan: rows.set_index("position")[SPEC.target].to_dict() for loan, rows in dataset.groupby("LoanId")}
    # Default at 6: rows 2..5 see it within t+1..t+4; rows 0..1 are followed 4 quarters without default;
    # the default row itself is not performing, so it is no observation.
    assert by_loan["defaults"] == {0: 0, 1: 0, 2: 1, 3: 1, 4: 1, 5: 1}
    # Survivor: known outcome up to position 11 = panel end 15 - 4.
    assert by_loan["survives"] == dict.fromkeys(range(12), 0)
    # Prepaid after position 5: no row was followed for 4 quarters (row 2 would need position 6).
    assert "prepays" not in by_loan


def test_defaulters_near_the_panel_end_do_not_bias_the_latest_quarters():
    history = _panel({"late_default": (10, 14, 14), "survives": (0, 15, None)})
    dataset = point_in_time_dataset(history, SPEC)
    last_kept = SPEC.quarters(dataset).max()
    assert last_kept == SPEC.quarters(history).max() - SPEC.horizon_quarters
    # Rows 10 and 11 (windows 11..14 and 12..15) both contain the default; 12 and 13 are not followed long enough.
    assert dataset.loc[dataset["LoanId"] == "late_default", SPEC.target].tolist() == [1, 1]


def test_out_of_time_split_holds_out_the_latest_quarters_behind_an_embargo():
    history = _panel({f"L{i}": (0, 15, 9 if i % 4 == 0 else None) for i in range(40)})
    dataset = point_in_time_dataset(history, SPEC)
    split = out_of_time_split(dataset, SPEC, holdout_quarters=3)
    train_q, test_q = SPEC.quarters(split.train), SPEC.quarters(split.test)
    assert np.unique(test_q).size == 3
    assert train_q.max() + SPEC.horizon_quarters == test_q.min()
    assert split.summary["test_quarters"] == ["2017Q2", "2017Q4"]
    assert split.summary["train_rows"] + split.summary["test_rows"] < len(dataset)  # the embargoed quarters
    with pytest.raises(ValueError, match="cannot hold out"):
        out_of_time_split(dataset, SPEC, holdout_quarters=12)


def test_suite_file_is_generated_from_the_default_spec():
    expected = build_history_suite(SPEC)
    assert json.loads(HISTORY_SUITE_PATH.read_text()) == expected, (
        "expectations/performance_history.json is stale: run "
        "`python -c 'from pipelines.model.training import write_history_suite; write_history_suite()'`")
    rules = {e["meta"]["rule"]: e for e in expected["expectations"]}
    assert rules["binary:DefaultFlag"]["kwargs"]["value_set"] == [0, 1]
    assert rules["range:TrueDefaultProbability"]["meta"]["optional"] is True
    assert set(SPEC.features) <= set(rules["required_columns"]["kwargs"]["column_set"])


@pytest.fixture(scope="module")
def small_history() -> pd.DataFrame:
    from pipelines.data.synthetic import generate_performance_history

    return generate_performance_history(300, seed=4)


def test_validation_drops_bad_rows_within_the_tolerance(small_history):
    broken = small_history.copy()
    broken.loc[3, "CurrentLTV"] = -1.0
    broken.loc[7, "TrueDefaultProbability"] = 1.5
    accepted, report = validate_history(broken, SPEC, max_rejected_share=0.01)
    assert report["rejected_rows"] == 2 and len(accepted) == len(broken) - 2
    assert report["failed_expectations"] == {"range:CurrentLTV": 1, "range:TrueDefaultProbability": 1}


def test_validation_stops_on_table_rules_and_too_many_bad_rows(small_history):
    from pipelines.data.ingestion import TableContractError

    with pytest.raises(TableContractError, match="required_columns"):
        validate_history(small_history.drop(columns="DSTI"), SPEC, 0.01)
    with pytest.raises(TableContractError, match="one_row_per_loan_quarter"):
        validate_history(pd.concat([small_history, small_history.head(1)]), SPEC, 0.01)
    broken = small_history.assign(DefaultFlag=small_history["DefaultFlag"].where(small_history.index % 10 != 0, 2))
    with pytest.raises(TableContractError, match="binary:DefaultFlag"):
        validate_history(broken, SPEC, 0.01)


POLICY = PromotionPolicy(auc_margin=0.01, calibration_alpha=0.01, min_calibrated_band_share=0.6, brier_tolerance=0.0)


@pytest.fixture(scope="module")
def outcomes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    true_pd = 1 / (1 + np.exp(-rng.normal(-3.5, 1.2, 40_000)))
    return (rng.random(true_pd.size) < true_pd).astype(int), true_pd


def test_gate_promotes_a_better_calibrated_model(outcomes):
    y, true_pd = outcomes
    noisy = 1 / (1 + np.exp(-(np.log(true_pd / (1 - true_pd)) + np.random.default_rng(0).normal(0, 1.5, y.size))))
    decision = decide_promotion(y, true_pd, noisy, "champion v1", POLICY)
    assert decision.promote
    assert decision.challenger["auc"] > decision.incumbent_metrics["auc"] + POLICY.auc_margin
    tags = decision.tags()
    assert tags["promotion.decision"] == "promoted" and tags["promotion.incumbent"] == "champion v1"
    assert "gain +" in tags["promotion.reasons"]


def test_gate_refuses_a_model_that_does_not_beat_the_margin(outcomes):
    y, true_pd = outcomes
    decision = decide_promotion(y, true_pd, true_pd, "champion v1", POLICY)
    assert not decision.promote
    assert "< margin" in decision.description()


def test_gate_refuses_a_discriminating_but_miscalibrated_model(outcomes):
    y, true_pd = outcomes
    weak = np.full_like(true_pd, y.mean())
    over = decide_promotion(y, np.minimum(true_pd * 3, 1), weak, "benchmark", POLICY)  # conservative, 3x
    assert over.challenger["auc"] > over.incumbent_metrics["auc"] + POLICY.auc_margin
    assert not over.promote
    assert over.challenger["calibrated_band_share"] == 1.0  # the band tests are one-sided: never too few defaults
    assert any(r.startswith("level:") and "> 2" in r for r in over.reasons)
    assert any(r.startswith("Brier") and "worse" in r and "not worse" not in r for r in over.reasons)
    under = decide_promotion(y, true_pd / 3, weak, "benchmark", POLICY)  # too few predicted defaults: refused
    assert not under.promote
    assert under.challenger["calibrated_band_share"] < POLICY.min_calibrated_band_share


def test_gate_without_incumbent_judges_calibration_only(outcomes):
    y, true_pd = outcomes
    assert decide_promotion(y, true_pd, None, "none", POLICY).promote
    assert not decide_promotion(y, np.minimum(true_pd * 3, 1), None, "none", POLICY).promote  # over-conservative
    assert not decide_promotion(y, true_pd / 3, None, "none", POLICY).promote  # underestimates
