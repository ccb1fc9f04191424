"""Known-answer tests of the benchmark logistic PD model (``models.pd_logistic.MacroLogisticPD``).

Coefficient recovery: 150,000 loan-quarters with features drawn at random and default flags drawn
from ``P(default) = 1 / (1 + exp(-x . beta))`` with known coefficients ``TRUE_BETA``. The design
``x`` is written out here from the model's documented terms (segment one-hot, (score - 700) / 100,
log(1 + age), LTV with 0 and an ``unsecured`` flag when there is no collateral, its excess over 0.8
and 1.0, negative equity x unemployment above 5 %, DSTI capped at 1.5 and its excess over 0.43,
positive payment shock x DSTI, unemployment, its positive rise, the house-price change), not taken
from the module, so a miscomputed term fails the test. The maximum-likelihood estimate is
asymptotically normal with covariance ``(X' W X)^-1``, ``W = diag(p (1 - p))`` at the truth: every
fitted coefficient must lie within 4 standard errors of the truth (the data are seeded, and all
true coefficients lie well inside the sign constraints).

Non-convergence: the iteration limit, an optimizer failure other than the limit, and a perfectly
separated sample (where the likelihood has no maximum) must raise, never return coefficients. The
separation check can only see a separation the fitted score itself shows, so the separated sample
here leaves a gap in DSTI between non-defaults and defaults (with the model's tiny ridge penalty,
separable data without a gap may stop at finite coefficients that misclassify a few boundary rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy.optimize import OptimizeResult
from scipy.special import expit
from threadpoolctl import threadpool_limits

from models.pd_logistic import MacroLogisticPD
from models.segments import SEGMENT_NAMES

N_ROWS = 150_000
TRUE_BETA = {
    "segment[first_lien_mortgage]": -7.2, "segment[heloc]": -6.9, "segment[auto]": -6.7,
    "segment[credit_card]": -6.3, "segment[personal]": -6.5, "segment[commercial_real_estate]": -7.1,
    "segment[commercial_industrial]": -6.8,
    "score_per_100": -0.6, "log_age": 0.15, "ltv": 0.5, "ltv_over_80": 1.2, "ltv_over_100": 1.0,
    "negative_equity_x_unemployment": 0.3, "unsecured": 0.4, "dsti": 1.0, "dsti_over_43": 1.5,
    "payment_shock_x_dsti": 0.3, "unemployment": 0.12, "unemployment_rise": 0.2, "house_price_change": -0.02,
}


def random_features(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ltv = rng.uniform(0.2, 2.0, n)
    ltv[rng.random(n) < 0.2] = np.nan  # unsecured rows in every segment
    return pd.DataFrame({
        "ProductSegment": pd.Categorical(rng.choice(SEGMENT_NAMES, n), categories=list(SEGMENT_NAMES)),
        "CreditScore": rng.uniform(560.0, 840.0, n),
        "LoanAgeQuarters": np.floor(np.expm1(rng.uniform(0.0, np.log(81.0), n))),  # spread in log(1 + age)
        "CurrentLTV": ltv,
        "DSTI": rng.uniform(0.05, 1.0, n),
        "PaymentShockPoints": rng.uniform(-1.0, 4.0, n),
        "unemployment_rate_avg_4q": rng.uniform(3.5, 10.0, n),
        "unemployment_rate_avg_4q_chg_4q": rng.uniform(-1.5, 3.0, n),
        "house_price_index_chg_4q": rng.uniform(-15.0, 15.0, n),
    })


def hand_design(f: pd.DataFrame) -> NDArray[np.float64]:
    """The model's regressors, written out from its documented definition."""
    ltv_raw = f["CurrentLTV"].to_numpy()
    unsecured = np.isnan(ltv_raw)
    ltv = np.where(unsecured, 0.0, ltv_raw)  # the draws lie in [0.2, 2.0], inside the [0, 3] clip
    dsti = np.minimum(f["DSTI"].to_numpy(), 1.5)
    u = f["unemployment_rate_avg_4q"].to_numpy()
    segment = np.stack([(f["ProductSegment"] == s).to_numpy(dtype=np.float64) for s in SEGMENT_NAMES], axis=1)
    numeric = np.column_stack([
        (f["CreditScore"].to_numpy() - 700.0) / 100.0,
        np.log(1.0 + f["LoanAgeQuarters"].to_numpy()),
        ltv,
        np.maximum(ltv - 0.8, 0.0),
        np.maximum(ltv - 1.0, 0.0),
        np.maximum(ltv - 1.0, 0.0) * np.maximum(u - 5.0, 0.0),
        unsecured.astype(np.float64),
        dsti,
        np.maximum(dsti - 0.43, 0.0),
        np.maximum(f["PaymentShockPoints"].to_numpy(), 0.0) * dsti,
        u,
        np.maximum(f["unemployment_rate_avg_4q_chg_4q"].to_numpy(), 0.0),
        f["house_price_index_chg_4q"].to_numpy(),
    ])
    return np.hstack([segment, numeric])


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, NDArray[np.float64], NDArray[np.int8]]:
    features = random_features(N_ROWS, seed=11)
    x = hand_design(features)
    beta = np.array([TRUE_BETA[name] for name in MacroLogisticPD.term_names()])
    flags = (np.random.default_rng(12).random(N_ROWS) < expit(x @ beta)).astype(np.int8)
    return features, x, flags


def test_fit_recovers_the_simulating_coefficients(simulated) -> None:
    features, x, flags = simulated
    assert 0.05 < flags.mean() < 0.15  # enough defaults for tight estimates
    # One BLAS thread: 150,000 x 20 products are too small to gain from threads, and on a shared
    # machine oversubscribed threads made this fit ten times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        model = MacroLogisticPD().fit(features, flags)
    fitted = model.coefficient_table()
    beta = np.array([TRUE_BETA[name] for name in MacroLogisticPD.term_names()])
    p = expit(x @ beta)
    standard_error = np.sqrt(np.diag(np.linalg.inv(x.T @ (x * (p * (1.0 - p))[:, None]))))
    assert standard_error.max() < 0.5  # the LTV kinks at 0.8 and 1.0 are the least precise terms
    for name, truth, se in zip(MacroLogisticPD.term_names(), beta, standard_error, strict=True):
        assert abs(fitted[name] - truth) < 4.0 * se, f"{name}: fitted {fitted[name]:.4f}, true {truth} (se {se:.4f})"
    # Scoring uses the same terms: predict_pd equals the logistic of the hand design.
    estimate = np.array([fitted[name] for name in MacroLogisticPD.term_names()])
    np.testing.assert_allclose(model.predict_pd(features), expit(x @ estimate), rtol=1e-10)


def test_iteration_limit_raises(simulated) -> None:
    features, _, flags = simulated
    with pytest.raises(RuntimeError, match="did not converge"):
        MacroLogisticPD(max_iter=1).fit(features.iloc[:5000], flags[:5000])


def test_any_optimizer_failure_raises(simulated, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed line search stops well before the iteration limit; its coefficients must not be used."""
    import scipy.optimize

    def failing_minimize(fun, x0, **_: object) -> OptimizeResult:
        return OptimizeResult(x=np.asarray(x0), success=False, nit=3, status=2,
                              message="ABNORMAL_TERMINATION_IN_LNSRCH")

    monkeypatch.setattr(scipy.optimize, "minimize", failing_minimize)
    features, _, flags = simulated
    model = MacroLogisticPD()
    with pytest.raises(RuntimeError, match="ABNORMAL_TERMINATION_IN_LNSRCH"):
        model.fit(features.iloc[:1000], flags[:1000])
    assert not hasattr(model, "coefficients_")


def test_perfectly_separated_defaults_raise(simulated) -> None:
    """Every loan with DSTI above 0.6 defaults, none below 0.4 does (none in between): no maximum exists."""
    features, _, _ = simulated
    dsti = features["DSTI"]
    sample = features[(dsti < 0.4) | (dsti > 0.6)].iloc[:2000]
    flags = (sample["DSTI"] > 0.6).to_numpy(dtype=np.int8)
    with pytest.raises(RuntimeError, match="perfectly separated"):
        MacroLogisticPD().fit(sample, flags)
