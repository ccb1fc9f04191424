"""The *true* quarterly default process of the synthetic loan world (synthetic data only).

The synthetic generator (``pipelines/data/synthetic.py``) draws defaults from this function, so it is the
ground truth that fitted PD models are later checked against. It is deliberately non-linear and has
interactions a plain logistic regression on raw columns will not capture. Real banks never know
this function; nothing outside synthetic data and model validation may use it.

For a loan of segment ``s`` in a quarter::

    logit(h) = base[s]
             + score[s]            * (credit_score - 700) / 100
             + unemployment[s]     * (U - 5)
             + unemployment_rise[s] * max(dU, 0)
             + ltv_over_80[s]      * max(LTV - 0.80, 0)
             + ltv_over_100[s]     * max(LTV - 1.00, 0)
             + double_trigger[s]   * max(LTV - 1.00, 0) * max(U - 5, 0)
             + log(1 + strategic[s] * Phi((LTV - 1.62) / 0.25))
             + payment_shock[s]    * max(dr, 0) * DSTI
             + dsti_excess[s]      * max(DSTI - dsti_threshold[s], 0)
             + dsti_cliff[s]       * sigmoid((DSTI - dsti_cliff_at[s]) / 0.02)
             + seasoning[s]        * x * exp(1 - x),    x = age_quarters / seasoning_peak[s]

where ``h`` is the probability of defaulting within the quarter, and

* ``U``   trailing 4-quarter mean of the unemployment rate, percent (defaults lag job losses);
* ``dU``  change of ``U`` over 4 quarters, percentage points (only rises hurt);
* ``LTV`` current loan-to-value as a fraction (combined LTV for HELOCs; NaN = unsecured, which
  switches the four LTV terms off);
* ``dr``  current rate minus the rate at origination, percentage points (0 for fixed-rate loans):
  the payment shock of repricing, which hurts more the more stretched the borrower (DSTI);
* ``DSTI`` annual debt service over annual income after repricing (total debt of the household for
  retail; debt service over net operating income / EBITDA for commercial), as a fraction;
* ``age_quarters`` loan age: defaults rise after origination and fade for seasoned loans.

Negative equity alone rarely causes default; combined with unemployment it does (the "double
trigger"), hence the product term. Deep negative equity adds *strategic* default: ``Phi`` is the
standard normal distribution function, the share of borrowers past their walk-away point, whose median
is equity at -62 % of the home's value (LTV 1.62, Bhutta, Dokko and Shan 2010), and ``strategic`` is set
so that at equity -50 % half of the hazard is strategic, as they report. The DSTI *cliff* is a near-step
(``sigmoid`` is the logistic function, 2 points of DSTI wide): past it a household's (or a property's,
a firm's) income no longer carries its debt service. A rate reset meets it through ``DSTI``, which is the
ratio *after* repricing: a reset that lifts a stretched borrower across the cliff is the payment-shock
threshold. Every effect's size and where it comes from: docs/calibration.md, "The true default process".

Coefficients are in :data:`COEFFICIENTS`. Their calibration
(docs/calibration.md): the base and unemployment terms are set so that, on the bank-like demo book, the
nine-quarter loss rates of the Fed's 2026 severely adverse scenario fall inside the ranges the Fed
published for its stress test by loan type (``compliance/fed_loss_rates.yaml``) with plausible baseline
rates, while the realised quarterly default rates of the synthetic history on the Fed's 2005-2025 macro
data stay US-like: first-lien mortgages ~0.06-0.09 % a quarter in calm years peaking at ~0.8 % in 2009,
cards ~0.9-1.3 % (3.5-5 % a year) rising to ~2 % in 2009-2010, the crisis the peak of every segment.
Commercial segments carry the largest unemployment-rise terms: in the Fed's results their losses grow
the most from baseline to stress. The 2020 unemployment spike causes a smaller bump (the synthetic
world has no forbearance or stimulus).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np
import numpy.typing as npt
from scipy.special import expit, ndtr

from models.segments import SEGMENT_ORDER, Segment

SCORE_REFERENCE = 700.0
SCORE_SCALE = 100.0
UNEMPLOYMENT_REFERENCE = 5.0  # percent; roughly the US natural rate
LTV_HINGE_LOW = 0.80  # above it the borrower starts to lack equity (no PMI-free refinancing)
LTV_HINGE_HIGH = 1.00  # negative equity
# Strategic default: walk-away points spread around the median that Bhutta, Dokko and Shan (2010) estimate,
# equity at -62 % of the home's value; their spread (0.25 of LTV) is an assumption.
STRATEGIC_MEDIAN_LTV = 1.62
STRATEGIC_LTV_SD = 0.25
DSTI_CLIFF_WIDTH = 0.02  # the cliff rises from 12 % to 88 % of its size within +-4 points of DSTI


FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SegmentCoefficients:
    """Coefficients of one segment in the logit of the quarterly default probability."""

    base: float
    score: float
    unemployment: float
    unemployment_rise: float
    ltv_over_80: float
    ltv_over_100: float
    double_trigger: float
    strategic: float
    payment_shock: float
    dsti_threshold: float
    dsti_excess: float
    dsti_cliff_at: float
    dsti_cliff: float
    seasoning: float
    seasoning_peak: float


_C = SegmentCoefficients
COEFFICIENTS: dict[Segment, SegmentCoefficients] = {
    #                    base  score  U     dU    LTV80 LTV100 2trig strat shock DSTIthr DSTIx cliff@ cliff seas  peak
    Segment.FIRST_LIEN_MORTGAGE:
        _C(-7.40, -0.90, 0.12, 0.25, 2.00, 1.00, 1.50, 3.20, 0.30, 0.43, 4.0, 0.50, 0.70, 0.50, 12.0),
    Segment.HELOC:
        _C(-6.83, -0.80, 0.12, 0.25, 2.00, 1.00, 1.50, 3.20, 0.30, 0.43, 4.0, 0.50, 0.70, 0.30, 16.0),
    Segment.AUTO:
        _C(-5.79, -0.90, 0.30, 0.22, 0.50, 1.00, 0.10, 0.00, 0.00, 0.43, 3.0, 0.50, 0.70, 0.40, 6.0),
    Segment.CREDIT_CARD:
        _C(-5.29, -1.00, 0.15, 0.08, 0.00, 0.00, 0.00, 0.00, 0.15, 0.43, 3.0, 0.50, 0.70, 0.50, 8.0),
    Segment.PERSONAL:
        _C(-5.60, -1.10, 0.15, 0.08, 0.00, 0.00, 0.00, 0.00, 0.00, 0.43, 3.0, 0.50, 0.70, 0.50, 6.0),
    Segment.COMMERCIAL_REAL_ESTATE:
        _C(-4.80, -0.70, 0.20, 0.35, 3.00, 4.00, 0.60, 0.00, 0.20, 0.80, 3.0, 1.00, 1.10, 0.20, 12.0),
    Segment.COMMERCIAL_INDUSTRIAL:
        _C(-5.30, -0.80, 0.20, 0.32, 0.00, 0.00, 0.00, 0.00, 0.20, 0.60, 3.0, 1.00, 1.10, 0.30, 8.0),
}
del _C

# One row per segment in SEGMENT_ORDER order, one column per coefficient: vectorised lookup by code.
_TABLE = np.array([astuple(COEFFICIENTS[s]) for s in SEGMENT_ORDER], dtype=np.float64)
_COLUMN = {f.name: i for i, f in enumerate(fields(SegmentCoefficients))}


def quarterly_default_probability(
    segment: npt.ArrayLike,
    credit_score: npt.ArrayLike,
    unemployment_pct: npt.ArrayLike,
    unemployment_change_pp: npt.ArrayLike,
    ltv: npt.ArrayLike,
    dsti: npt.ArrayLike,
    payment_shock_pp: npt.ArrayLike,
    age_quarters: npt.ArrayLike,
) -> FloatArray:
    """The true probability of default within the quarter; see the module docstring for the formula.

    ``segment`` holds integer codes from :func:`segment_codes`; all arguments broadcast against each
    other, so a macro scalar can be combined with loan arrays.
    """
    coef = _TABLE[np.asarray(segment, dtype=np.intp)]

    def c(name: str) -> FloatArray:
        return coef[..., _COLUMN[name]]

    score = (np.asarray(credit_score, dtype=np.float64) - SCORE_REFERENCE) / SCORE_SCALE
    unemployment_gap = np.asarray(unemployment_pct, dtype=np.float64) - UNEMPLOYMENT_REFERENCE
    rise = np.maximum(np.asarray(unemployment_change_pp, dtype=np.float64), 0.0)
    ltv = np.nan_to_num(np.asarray(ltv, dtype=np.float64), nan=0.0)
    dsti = np.asarray(dsti, dtype=np.float64)
    shock = np.maximum(np.asarray(payment_shock_pp, dtype=np.float64), 0.0)
    seasoning = np.asarray(age_quarters, dtype=np.float64) / c("seasoning_peak")
    negative_equity = np.maximum(ltv - LTV_HINGE_HIGH, 0.0)

    logit = (
        c("base")
        + c("score") * score
        + c("unemployment") * unemployment_gap
        + c("unemployment_rise") * rise
        + c("ltv_over_80") * np.maximum(ltv - LTV_HINGE_LOW, 0.0)
        + c("ltv_over_100") * negative_equity
        + c("double_trigger") * negative_equity * np.maximum(unemployment_gap, 0.0)
        + np.log1p(c("strategic") * ndtr((ltv - STRATEGIC_MEDIAN_LTV) / STRATEGIC_LTV_SD))
        + c("payment_shock") * shock * dsti
        + c("dsti_excess") * np.maximum(dsti - c("dsti_threshold"), 0.0)
        + c("dsti_cliff") * expit((dsti - c("dsti_cliff_at")) / DSTI_CLIFF_WIDTH)
        + c("seasoning") * seasoning * np.exp(1.0 - seasoning)
    )
    return 1.0 / (1.0 + np.exp(-logit))
