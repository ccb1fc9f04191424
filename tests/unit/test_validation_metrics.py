"""Known answers of the PD validation metrics (hand-computed cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import validation_metrics as vm

# Two defaulters (0.35, 0.8) and two non-defaulters (0.1, 0.4): of the four defaulter/non-defaulter
# pairs three are ordered correctly (0.8 > both, 0.35 > 0.1), so AUC = 3/4.
Y = np.array([0, 0, 1, 1])
SCORE = np.array([0.1, 0.4, 0.35, 0.8])


def test_auc_gini_of_a_hand_case():
    assert vm.auc(Y, SCORE) == pytest.approx(0.75)
    assert vm.gini(Y, SCORE) == pytest.approx(0.5)


def test_auc_counts_ties_as_one_half():
    assert vm.auc([0, 1], [0.3, 0.3]) == pytest.approx(0.5)
    # pairs: (d=0.5 vs n=0.5) tie 1/2, (d=0.5 vs n=0.2) 1, (d=0.1 vs n=0.5) 0, (d=0.1 vs n=0.2) 0 -> 1.5 / 4
    assert vm.auc([1, 1, 0, 0], [0.5, 0.1, 0.5, 0.2]) == pytest.approx(0.375)


def test_auc_is_invariant_to_monotone_transforms_and_flips_with_the_sign():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.2).astype(int)
    score = rng.normal(size=500) + y
    assert vm.auc(y, np.exp(score)) == pytest.approx(vm.auc(y, score))
    assert vm.auc(y, -score) == pytest.approx(1.0 - vm.auc(y, score))


def test_roc_curve_steps_and_ks_of_the_hand_case():
    fpr, tpr, thresholds = vm.roc_curve(Y, SCORE)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert thresholds[1:].tolist() == [0.8, 0.4, 0.35, 0.1]
    assert vm.ks_statistic(Y, SCORE) == pytest.approx(0.5)


def test_ks_is_one_for_perfect_separation():
    assert vm.ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == pytest.approx(1.0)


def test_brier_and_log_loss_known_values():
    assert vm.brier_score([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    assert vm.log_loss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert vm.log_loss([1, 0], [1.0, 0.0]) == pytest.approx(0.0, abs=1e-12)


def test_psi_known_value():
    # Two bins with shares 50/50 -> 25/75: (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.27465...
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert vm.psi([0.0] * 50 + [1.0] * 50, [0.0] * 25 + [1.0] * 75, n_bins=2) == pytest.approx(expected)
    assert vm.psi_categorical(["a"] * 50 + ["b"] * 50, ["a"] * 25 + ["b"] * 75) == pytest.approx(expected)


def test_psi_is_zero_for_the_same_distribution_and_counts_missing_as_a_bin():
    values = np.arange(1000.0)
    assert vm.psi(values, values) == pytest.approx(0.0)
    with_missing = np.r_[values[:500], [np.nan] * 500]
    assert vm.psi(values, with_missing) > 1.0


def test_calibration_table_counts_and_binomial_p_values():
    rng = np.random.default_rng(7)
    p = rng.uniform(0.01, 0.2, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    table = vm.calibration_table(y, p, n_bands=10)
    assert len(table) == 10
    assert sum(b.count for b in table) == p.size
    assert sum(b.defaults for b in table) == y.sum()
    assert all(table[i].max_predicted <= table[i + 1].min_predicted for i in range(9))
    assert vm.calibrated_band_share(table, 0.01) >= 0.8  # calibrated by construction
    doubled = vm.calibration_table(y, np.minimum(2 * p, 1.0), n_bands=10)
    assert vm.calibrated_band_share(doubled, 0.01) == 0.0  # every band over-predicts by a factor 2


def test_binomial_p_value_of_one_band_matches_the_exact_test():
    # 10 rows predicted at 0.1 with 4 defaults: two-sided exact binomial p-value = 0.0127951...
    (band,) = vm.calibration_table([1] * 4 + [0] * 6, [0.1] * 10, n_bands=1)
    assert band.binomial_p_value == pytest.approx(0.012795, abs=1e-6)
    assert band.observed_rate == pytest.approx(0.4)


def test_hosmer_lemeshow_accepts_calibrated_and_rejects_miscalibrated_predictions():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.3, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    assert vm.hosmer_lemeshow(y, p)[1] > 0.001
    statistic, p_value = vm.hosmer_lemeshow(y, np.clip(p * 1.5, 0, 1))
    assert statistic > 100 and p_value < 1e-10


def test_metrics_refuse_a_single_class_and_mismatched_lengths():
    with pytest.raises(ValueError, match="both"):
        vm.auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        vm.brier_score([0, 1], [0.1])
    with pytest.raises(ValueError, match="0 or 1"):
        vm.auc([0, 2], [0.1, 0.2])


def test_auc_standard_error_of_a_hand_case_and_its_shrinking_with_sample_size():
    """Hanley-McNeil by hand: AUC 0.8 with 4 defaults and 4 non-defaults, then the same ranking repeated."""
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])  # 13 of 16 pairs ranked right
    a = 13 / 16
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    expected = math.sqrt((a * (1 - a) + 3 * (q1 - a * a) + 3 * (q2 - a * a)) / 16)
    assert vm.auc(y, score) == pytest.approx(a)
    assert vm.auc_standard_error(y, score) == pytest.approx(expected)
    larger = vm.auc_standard_error(np.tile(y, 100), np.tile(score, 100))
    assert vm.auc(np.tile(y, 100), np.tile(score, 100)) == pytest.approx(a)
    assert larger < expected / 5  # about 1 / sqrt(100) of it


def test_paired_auc_difference_matches_delongs_formula_on_a_hand_case_and_the_auc():
    """Hand case: 3 defaulters, 3 non-defaulters. Model a: AUC 8/9; model b: AUC 5.5/9 (one tie)."""
    y = np.array([1, 1, 1, 0, 0, 0])
    a = np.array([0.9, 0.8, 0.4, 0.5, 0.3, 0.1])
    b = np.array([0.9, 0.3, 0.5, 0.5, 0.6, 0.1])
    result = vm.paired_auc_difference(y, a, b)
    assert result.difference == pytest.approx(8 / 9 - 5.5 / 9)
    assert result.difference == pytest.approx(vm.auc(y, a) - vm.auc(y, b))
    # Placement values by hand (psi = 1 if the defaulter scores above, 1/2 if tied): V10 per defaulter, the
    # share of non-defaulters below it; V01 per non-defaulter, the share of defaulters above it.
    # a: V10 = (1, 1, 2/3), V01 = (2/3, 1, 1); b: V10 = (1, 1/3, 1/2), V01 = (1/2, 1/3, 1).
    v10 = np.array([[1, 1, 2 / 3], [1, 1 / 3, 1 / 2]])
    v01 = np.array([[2 / 3, 1, 1], [1 / 2, 1 / 3, 1]])
    s = np.cov(v10) / 3 + np.cov(v01) / 3
    assert result.standard_error == pytest.approx(np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1]))
    assert 0 < result.p_value < 1


def test_paired_auc_difference_is_nil_for_one_model_and_far_below_the_single_auc_se_for_twins():
    rng = np.random.default_rng(3)
    y = (rng.random(4000) < 0.1).astype(int)
    score = y + rng.normal(0, 1.2, y.size)
    same = vm.paired_auc_difference(y, score, score)
    assert same.difference == 0 and same.standard_error == pytest.approx(0, abs=1e-12) and same.p_value == 1
    twin = score + rng.normal(0, 0.2, y.size)  # a slightly noisier copy: strongly correlated AUCs
    paired = vm.paired_auc_difference(y, score, twin)
    assert paired.standard_error < 0.5 * vm.auc_standard_error(y, score)
    better = vm.paired_auc_difference(y, score, rng.normal(size=y.size))  # against a coin: clearly better
    assert better.p_value < 1e-6 and better.difference > 0.1
