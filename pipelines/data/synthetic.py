"""Seeded synthetic loan data: a loan book (the tape) and a quarterly loan performance history.

Real loan-level data cannot leave a bank, yet the platform needs both a tape to stress and a history
to fit PD models on, with a known truth to check those models against. Both generators here share
one origination model (:data:`PRODUCTS` and :func:`_originate`) and one point-in-time loan state
(:func:`_state`), so the history the PD models learn from and the book they are applied to describe
the same loan world. Defaults follow :func:`models.true_default_process.quarterly_default_probability`
driven by the real Fed macro history (``scenarios/fed``).

Everything is vectorised over loans with NumPy; the only Python loops run over products, chunks
of a million loans or the handful of delinquency buckets.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.amortisation import level_payment
from models.projection import DEFAULT_DAYS_PAST_DUE  # Basel default: the bank's PD is 1 from here
from models.segments import SEGMENT_ORDER
from models.true_default_process import quarterly_default_probability
from pipelines.data.contract import (
    ARROW_SCHEMA,
    FIELD_BY_NAME,
    MONEY,
    RATE,
    RATE_TYPES,
    REFERENCE_INDICES,
    REGIONS,
    REPAYMENT_SCHEDULES,
    SECURED_SEGMENTS,
    Segment,
)
from pipelines.data.macro import PERCENT, REFERENCE_INDEX_VARIABLE, load_history, quarterly_changes

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MONTHS_PER_YEAR = 12
MONTHS_PER_QUARTER = 3
QUARTERS_PER_YEAR = 4
RATE_DECIMALS = 8
CENTS = 100

HISTORY_START = pd.Period("2005Q1", freq="Q")
ORIGINATION_START = pd.Period("2000Q1", freq="Q")
BOOK_CHUNK_LOANS = 1_000_000  # bounds memory for multi-million-loan books
BOOK_ID_PREFIX, CUSTOMER_ID_PREFIX, HISTORY_ID_PREFIX = "LN", "CU", "HL"  # history loans are not book loans

# Pricing: spreads in the product table are for this score; weaker borrowers pay more.
PRICING_SCORE = 720.0
RATE_NOISE_SD = 0.0025
MIN_FIXED_RATE = 0.005
MAX_RATE = FIELD_BY_NAME["InterestRate"].maximum
MIN_MARGIN = FIELD_BY_NAME["RateMargin"].minimum
MAX_MARGIN = FIELD_BY_NAME["RateMargin"].maximum
SCORE_MIN = int(FIELD_BY_NAME["CreditScore"].minimum)
SCORE_MAX = int(FIELD_BY_NAME["CreditScore"].maximum)

REGION_SHARES = {"northeast": 0.17, "midwest": 0.21, "south": 0.38, "west": 0.24}
# Regional house prices move as (national HPI ratio) ** beta: the West boomed and busted hardest.
REGION_HPI_BETA = {"northeast": 0.9, "midwest": 0.7, "south": 0.9, "west": 1.4}

# Borrowers: a customer's loans share region and part of their credit quality. Loans pick borrowers
# uniformly from a pool this many times their number: Poisson(0.5) loans per borrower, so about 77 %
# of borrowers hold one loan, 19 % two and the rest more.
CUSTOMER_POOL_PER_LOAN = 2.0
CUSTOMER_SHARE_OF_SCORE_VARIANCE = 0.7

# 2004Q1-2007Q2 originations: looser underwriting before the crisis.
BOOM_QUARTERS = (pd.Period("2004Q1", freq="Q"), pd.Period("2007Q2", freq="Q"))
BOOM_SCORE_SHIFT = -20.0
BOOM_LTV_SHIFT = 0.05
BOOM_DSTI_SHIFT = 0.03

DSTI_BOUNDS = (0.05, 0.95)
# A HELOC sits behind a first lien worth this share of the property at origination. The tape's
# CollateralValue is the whole property and SeniorLienBalance the first lien; the truth uses combined LTV.
HELOC_SENIOR_LIEN_RANGE = (0.45, 0.70)
HELOC_MIN_OWN_LTV = 0.05
UTILISATION_CONCENTRATION = 4.0  # Beta(m k, (1 - m) k): higher means utilisations closer to the mean
INCOME_BOUNDS = (8_000.0, 5e9)

# Prepayment: more when market rates fall below the loan's (refinancing), far less under water.
REFI_BOOST_PER_PP = 0.6
MAX_PREPAYMENT = 0.20
NEGATIVE_EQUITY_PREPAYMENT_FACTOR = 0.3

# The bank's PD is the truth seen through a noisy model, and knows about arrears.
BANK_PD_NOISE_SD = 0.35
DELINQUENT_PD_LOGIT_UPLIFT = 2.0
# P(in arrears) = base + slope x true 12-month PD: some arrears are technical and cure.
DELINQUENCY_BASE = 0.01
DELINQUENCY_PER_PD = 1.5
MAX_DELINQUENCY_PROBABILITY = 0.6
DPD_BUCKETS = ((1, 30, 0.50), (30, 60, 0.22), (60, 90, 0.12), (90, 180, 0.09), (180, 365, 0.07))

REAL_ESTATE_INDICES = ("house_price_index", "cre_price_index")
# Products price off the reference-index variables only, so a rate-variable code is a ReferenceIndex code.
RATE_VARIABLES = tuple(REFERENCE_INDEX_VARIABLE[name] for name in REFERENCE_INDICES)


@dataclass(frozen=True)
class Product:
    """A bank product (LoanType): how it is priced, sized, repaid and collateralised.

    Rates and spreads are annual fractions; ``dsti_mean`` is total debt service over income at
    origination, of which the loan itself makes ``loan_share_of_debt_service`` (1 for commercial,
    where income is NOI or EBITDA).
    """

    code: str
    segment: Segment
    share: float  # of the loans in the performance history (the PD model's development sample)
    schedule: str
    rate_type: str
    rate_variable: str  # Fed variable the loan is priced off (fixed) or reprices on (variable)
    spread: float  # over rate_variable at PRICING_SCORE; the margin for variable-rate loans
    spread_per_100_points: float
    term_months: tuple[int, ...]
    amount_median: float
    amount_sigma: float
    amount_bounds: tuple[float, float]
    score_mean: float
    score_sd: float
    dsti_mean: float
    dsti_sd: float
    loan_share_of_debt_service: float
    mean_age_months: float  # of loans on today's book
    prepayment: float  # quarterly, before refinancing incentives
    amortisation_months: int | None = None  # longer than the term: balloon at maturity
    ltv_mean: float = np.nan  # NaN: unsecured
    ltv_sd: float = 0.0
    ltv_bounds: tuple[float, float] = (0.0, 0.0)
    collateral_index: str | None = None  # None with an LTV: a depreciating asset (cars)
    collateral_volatility: float = 0.0  # idiosyncratic, per square-root year
    depreciation: float = 0.0  # per year
    utilisation_mean: float = 1.0  # revolving lines only
    revolving_paydown: float = 0.0  # principal share of the balance paid per year (card minimums)


_F, _V = "fixed", "variable"
_HPI, _CRE = REAL_ESTATE_INDICES
PRODUCTS: tuple[Product, ...] = (
    Product("MORTGAGE_30Y_FIXED", Segment.FIRST_LIEN_MORTGAGE, 0.24, "annuity", _F, "mortgage_rate", 0.0025, 0.005,
            (360,), 240_000, 0.55, (30_000, 3e6), 745, 55, 0.33, 0.08, 0.75, 72, 0.015,
            ltv_mean=0.78, ltv_sd=0.12, ltv_bounds=(0.30, 0.97), collateral_index=_HPI, collateral_volatility=0.06),
    Product("MORTGAGE_15Y_FIXED", Segment.FIRST_LIEN_MORTGAGE, 0.06, "annuity", _F, "mortgage_rate", -0.004, 0.004,
            (180,), 180_000, 0.55, (30_000, 2e6), 760, 45, 0.31, 0.07, 0.75, 48, 0.02,
            ltv_mean=0.65, ltv_sd=0.12, ltv_bounds=(0.25, 0.95), collateral_index=_HPI, collateral_volatility=0.06),
    Product("MORTGAGE_5_1_ARM", Segment.FIRST_LIEN_MORTGAGE, 0.05, "annuity", _V, "treasury_3m", 0.0275, 0.004,
            (360,), 380_000, 0.60, (50_000, 5e6), 750, 50, 0.33, 0.08, 0.75, 60, 0.025,
            ltv_mean=0.75, ltv_sd=0.10, ltv_bounds=(0.30, 0.95), collateral_index=_HPI, collateral_volatility=0.06),
    Product("HELOC", Segment.HELOC, 0.05, "revolving", _V, "prime_rate", 0.005, 0.010,
            (360,), 75_000, 0.60, (10_000, 1e6), 755, 50, 0.33, 0.08, 0.08, 84, 0.02,
            ltv_mean=0.78, ltv_sd=0.08, ltv_bounds=(0.55, 0.95), collateral_index=_HPI, collateral_volatility=0.06,
            utilisation_mean=0.45),
    Product("AUTO_NEW", Segment.AUTO, 0.08, "annuity", _F, "treasury_5y", 0.020, 0.015,
            (48, 60, 72), 32_000, 0.40, (5_000, 150_000), 725, 65, 0.33, 0.09, 0.30, 20, 0.03,
            ltv_mean=0.95, ltv_sd=0.10, ltv_bounds=(0.60, 1.25), depreciation=0.15),
    Product("AUTO_USED", Segment.AUTO, 0.07, "annuity", _F, "treasury_5y", 0.045, 0.030,
            (36, 48, 60, 72), 20_000, 0.45, (3_000, 90_000), 665, 70, 0.35, 0.09, 0.30, 18, 0.03,
            ltv_mean=1.05, ltv_sd=0.12, ltv_bounds=(0.60, 1.35), depreciation=0.10),
    Product("CARD_GENERAL", Segment.CREDIT_CARD, 0.20, "revolving", _V, "prime_rate", 0.110, 0.030,
            (120,), 9_000, 0.80, (500, 100_000), 705, 75, 0.33, 0.09, 0.05, 60, 0.02,
            utilisation_mean=0.35, revolving_paydown=0.12),
    Product("CARD_PRIVATE_LABEL", Segment.CREDIT_CARD, 0.05, "revolving", _V, "prime_rate", 0.170, 0.020,
            (120,), 3_000, 0.60, (300, 20_000), 670, 70, 0.35, 0.09, 0.02, 40, 0.03,
            utilisation_mean=0.45, revolving_paydown=0.12),
    Product("PERSONAL_UNSECURED", Segment.PERSONAL, 0.12, "annuity", _F, "treasury_5y", 0.070, 0.050,
            (24, 36, 48, 60), 12_000, 0.60, (1_000, 100_000), 690, 65, 0.35, 0.09, 0.20, 16, 0.04),
    Product("CRE_OFFICE", Segment.COMMERCIAL_REAL_ESTATE, 0.010, "interest_only", _F, "treasury_5y", 0.020, 0.010,
            (60, 84, 120), 1.5e6, 1.2, (250_000, 5e8), 700, 50, 0.60, 0.10, 1.0, 36, 0.015,
            ltv_mean=0.62, ltv_sd=0.08, ltv_bounds=(0.30, 0.80), collateral_index=_CRE, collateral_volatility=0.08),
    Product("CRE_MULTIFAMILY", Segment.COMMERCIAL_REAL_ESTATE, 0.013, "annuity", _F, "treasury_5y", 0.018, 0.010,
            (60, 84, 120), 1.2e6, 1.2, (250_000, 5e8), 710, 50, 0.60, 0.10, 1.0, 40, 0.015, amortisation_months=360,
            ltv_mean=0.65, ltv_sd=0.08, ltv_bounds=(0.30, 0.80), collateral_index=_CRE, collateral_volatility=0.08),
    Product("CRE_CONSTRUCTION", Segment.COMMERCIAL_REAL_ESTATE, 0.007, "bullet", _V, "prime_rate", 0.010, 0.010,
            (24, 36), 2.5e6, 1.2, (500_000, 5e8), 690, 50, 0.55, 0.10, 1.0, 12, 0.03,
            ltv_mean=0.60, ltv_sd=0.08, ltv_bounds=(0.30, 0.80), collateral_index=_CRE, collateral_volatility=0.08),
    Product("CI_TERM", Segment.COMMERCIAL_INDUSTRIAL, 0.020, "annuity", _F, "treasury_5y", 0.025, 0.015,
            (36, 60, 84), 250_000, 1.5, (25_000, 2e8), 700, 55, 0.35, 0.10, 1.0, 24, 0.02),
    Product("CI_REVOLVER", Segment.COMMERCIAL_INDUSTRIAL, 0.030, "revolving", _V, "treasury_3m", 0.025, 0.015,
            (36, 60), 400_000, 1.5, (25_000, 5e8), 700, 55, 0.08, 0.03, 1.0, 24, 0.03,
            utilisation_mean=0.45),
)
del _F, _V, _HPI, _CRE

# The loan book's mix by exposure, the calibration target (docs/calibration.md): loans of the large domestically
# chartered commercial banks in the Federal Reserve's H.8 release, by the book's segments (H.8's "other loans and
# leases" have no segment here and are left out; the rest is renormalised).
BOOK_EXPOSURE_MIX: dict[Segment, float] = {
    Segment.FIRST_LIEN_MORTGAGE: 0.266, Segment.HELOC: 0.028, Segment.AUTO: 0.055, Segment.CREDIT_CARD: 0.133,
    Segment.PERSONAL: 0.048, Segment.COMMERCIAL_REAL_ESTATE: 0.196, Segment.COMMERCIAL_INDUSTRIAL: 0.274,
}
# Share of the book's *loans* by product that gives BOOK_EXPOSURE_MIX with the products' balance distributions:
# each product's count share is its segment's exposure target, times the product's share of that segment's
# exposure, over the product's mean balance (measured on a 200,000-loan book; tests/unit/test_synthetic.py checks
# the resulting mix). Many small card and consumer loans, a few hundred commercial names per 20,000 loans, whose
# lognormal sizes (sigma 1.2-1.5) put a handful of large names on top.
BOOK_COUNT_SHARES: dict[str, float] = {
    "MORTGAGE_30Y_FIXED": 0.01879, "MORTGAGE_15Y_FIXED": 0.00462, "MORTGAGE_5_1_ARM": 0.00397, "HELOC": 0.01995,
    "AUTO_NEW": 0.03075, "AUTO_USED": 0.02662, "CARD_GENERAL": 0.62543, "CARD_PRIVATE_LABEL": 0.15435,
    "PERSONAL_UNSECURED": 0.10288, "CRE_OFFICE": 0.00045, "CRE_MULTIFAMILY": 0.00058, "CRE_CONSTRUCTION": 0.00032,
    "CI_TERM": 0.00446, "CI_REVOLVER": 0.00683,
}


@cache
def _product_column(name: str) -> npt.NDArray[np.generic]:
    """One product attribute as an array indexed by product code, for vectorised lookups."""
    values = [getattr(p, name) for p in PRODUCTS]
    if name == "segment":
        return np.array([SEGMENT_ORDER.index(v) for v in values], dtype=np.int8)
    if name in ("schedule", "rate_type", "rate_variable", "collateral_index"):
        vocabulary = {"schedule": REPAYMENT_SCHEDULES, "rate_type": RATE_TYPES, "rate_variable": RATE_VARIABLES,
                      "collateral_index": REAL_ESTATE_INDICES}[name]
        return np.array([-1 if v is None else vocabulary.index(v) for v in values], dtype=np.int8)
    if name == "amortisation_months":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class _Macro:
    """The Fed history as arrays indexed by quarter position (0 = first history quarter)."""

    first_quarter: int  # pd.Period ordinal of position 0
    rates: FloatArray  # (len(RATE_VARIABLES), quarters), percent
    real_estate: FloatArray  # (len(REAL_ESTATE_INDICES), quarters), index levels
    unemployment: FloatArray  # trailing 4-quarter mean, percent
    unemployment_change: FloatArray  # its 4-quarter change, points
    features: pd.DataFrame  # every variable, its 4-quarter change and the two drivers above

    def position(self, month: npt.ArrayLike) -> IntArray:
        """Quarter position of a month index (months since 1970-01), clamped to the history."""
        quarter = np.asarray(month, dtype=np.int64) // MONTHS_PER_QUARTER - self.first_quarter
        return np.clip(quarter, 0, self.rates.shape[1] - 1)


UNEMPLOYMENT_DRIVER = "unemployment_rate_avg_4q"
UNEMPLOYMENT_CHANGE_DRIVER = "unemployment_rate_avg_4q_chg_4q"


@cache
def _macro() -> _Macro:
    history = load_history()
    driver = history["unemployment_rate"].rolling(QUARTERS_PER_YEAR, min_periods=1).mean()
    features = pd.concat([history, quarterly_changes(history)], axis=1)
    features[UNEMPLOYMENT_DRIVER] = driver
    features[UNEMPLOYMENT_CHANGE_DRIVER] = driver.diff(QUARTERS_PER_YEAR)
    return _Macro(
        first_quarter=int(history.index[0].ordinal),
        rates=history[list(RATE_VARIABLES)].to_numpy().T.copy(),
        real_estate=history[list(REAL_ESTATE_INDICES)].to_numpy().T.copy(),
        unemployment=driver.to_numpy(),
        unemployment_change=np.nan_to_num(features[UNEMPLOYMENT_CHANGE_DRIVER].to_numpy()),
        features=features,
    )


@dataclass
class _Loans:
    """Loan attributes fixed at origination (one entry per loan)."""

    product: npt.NDArray[np.int16]
    start_month: IntArray  # months since 1970-01
    term: IntArray  # months
    amortisation: IntArray  # months
    region: npt.NDArray[np.int8]
    score: FloatArray
    amount: FloatArray  # original principal or committed limit
    rate0: FloatArray
    margin: FloatArray  # NaN for fixed-rate loans
    utilisation: FloatArray  # 1 for term loans
    ltv0: FloatArray  # NaN for unsecured
    value0: FloatArray  # collateral value at origination, NaN for unsecured
    senior_lien: FloatArray  # first-lien balance ahead of a HELOC, 0 otherwise
    value_shock: FloatArray  # the property's idiosyncratic standard-normal price path direction
    income: FloatArray
    other_debt_service: FloatArray  # annual

    @property
    def segment(self) -> npt.NDArray[np.int8]:
        return _product_column("segment")[self.product]

    @property
    def is_variable(self) -> npt.NDArray[np.bool_]:
        return ~np.isnan(self.margin)


@dataclass
class _State:
    """Point-in-time values of loans at an observation month (one entry per loan-observation)."""

    age_months: IntArray
    rate: FloatArray
    balance: FloatArray
    debt_service: FloatArray  # annual
    dsti: FloatArray
    collateral_value: FloatArray
    ltv: FloatArray
    payment_shock_pp: FloatArray
    hazard: FloatArray  # true quarterly default probability


def _months(date: datetime.date) -> int:
    return (date.year - 1970) * MONTHS_PER_YEAR + date.month - 1


def _annuity_balance(amount: FloatArray, annual_rate: FloatArray, months: npt.ArrayLike,
                     elapsed: npt.ArrayLike) -> FloatArray:
    """Outstanding principal after ``elapsed`` monthly annuity payments, in closed form so that a
    balance at any date needs no month-by-month loop."""
    r = annual_rate / MONTHS_PER_YEAR
    n = np.asarray(months, dtype=np.float64)
    k = np.asarray(elapsed, dtype=np.float64)
    log_growth = np.log1p(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(r > 1e-12, (np.exp(n * log_growth) - np.exp(k * log_growth)) / np.expm1(n * log_growth),
                         1.0 - k / n)
    return amount * np.clip(share, 0.0, 1.0)


def _draw_products(rng: np.random.Generator, n: int, book: bool) -> npt.NDArray[np.int16]:
    """Products of ``n`` loans: the book's calibrated mix (``book``) or the history's development mix."""
    shares = np.array([BOOK_COUNT_SHARES[p.code] for p in PRODUCTS]) if book else _product_column("share")
    return rng.choice(len(PRODUCTS), size=n, p=shares / shares.sum()).astype(np.int16)


def _draw_terms(rng: np.random.Generator, product: npt.NDArray[np.int16]) -> IntArray:
    choices = [p.term_months for p in PRODUCTS]
    table = np.zeros((len(PRODUCTS), max(map(len, choices))), dtype=np.int64)
    for i, c in enumerate(choices):
        table[i, : len(c)] = c
    counts = np.array([len(c) for c in choices])[product]
    return table[product, (rng.random(product.size) * counts).astype(np.int64)]


def _draw_regions(rng: np.random.Generator, n: int) -> npt.NDArray[np.int8]:
    shares = np.array([REGION_SHARES[r] for r in REGIONS])
    return rng.choice(len(REGIONS), size=n, p=shares / shares.sum()).astype(np.int8)


def _clipped_normal(rng: np.random.Generator, mean: FloatArray, sd: FloatArray,
                    bounds: tuple[FloatArray, FloatArray]) -> FloatArray:
    return np.clip(mean + sd * rng.standard_normal(mean.size), *bounds)


def _originate(rng: np.random.Generator, product: npt.NDArray[np.int16], term: IntArray, start_month: IntArray,
               region: npt.NDArray[np.int8], quality: FloatArray, macro: _Macro) -> _Loans:
    """Draw everything a bank knows at origination, priced off the Fed rates of the origination quarter.

    ``quality`` is each borrower's standard-normal credit quality, shared across a customer's loans.
    """
    n = product.size
    col = _product_column
    q0 = macro.position(start_month)
    quarter0 = q0 + macro.first_quarter
    boom = (quarter0 >= BOOM_QUARTERS[0].ordinal) & (quarter0 <= BOOM_QUARTERS[1].ordinal)
    segment = col("segment")[product]
    real_estate = col("collateral_index")[product]
    secured = ~np.isnan(col("ltv_mean")[product])
    revolving = col("schedule")[product] == REPAYMENT_SCHEDULES.index("revolving")
    variable = col("rate_type")[product] == RATE_TYPES.index("variable")

    score = np.clip(np.rint(col("score_mean")[product] + col("score_sd")[product] * quality
                            + boom * BOOM_SCORE_SHIFT), SCORE_MIN, SCORE_MAX)

    lo, hi = col("amount_bounds")[product].T
    amount = np.exp(np.log(col("amount_median")[product]) + col("amount_sigma")[product] * rng.standard_normal(n))
    # Amounts are today's; property loans of earlier vintages were smaller with the price level.
    has_index = real_estate >= 0
    index_ratio = macro.real_estate[real_estate, q0] / macro.real_estate[real_estate, -1]
    amount = np.round(np.clip(np.where(has_index, amount * index_ratio, amount), lo, hi), 2)

    spread = (col("spread")[product] + col("spread_per_100_points")[product] * (PRICING_SCORE - score) / 100
              + RATE_NOISE_SD * rng.standard_normal(n))
    index0 = macro.rates[col("rate_variable")[product], q0] / PERCENT
    margin = np.where(variable, np.clip(spread, MIN_MARGIN, MAX_MARGIN), np.nan)
    rate0 = np.where(variable, np.clip(index0 + margin, 0.0, MAX_RATE), np.clip(index0 + spread, MIN_FIXED_RATE,
                                                                                  MAX_RATE))

    m = col("utilisation_mean")[product]
    k = UTILISATION_CONCENTRATION
    utilisation = np.where(revolving, rng.beta(np.maximum(m * k, 1e-3), np.maximum((1 - m) * k, 1e-3)), 1.0)

    is_heloc = segment == SEGMENT_ORDER.index(Segment.HELOC)
    ltv_lo, ltv_hi = col("ltv_bounds")[product].T
    boom_ltv = (boom & (real_estate == REAL_ESTATE_INDICES.index("house_price_index"))) * BOOM_LTV_SHIFT
    ltv0 = _clipped_normal(rng, col("ltv_mean")[product] + boom_ltv, col("ltv_sd")[product],
                           (ltv_lo, ltv_hi + boom_ltv))
    senior_share = np.where(is_heloc, rng.uniform(*HELOC_SENIOR_LIEN_RANGE, n), 0.0)
    value0 = np.where(secured, amount / np.maximum(ltv0 - senior_share, HELOC_MIN_OWN_LTV), np.nan)
    ltv0 = np.where(secured, ltv0, np.nan)

    amortisation = np.where(np.isnan(col("amortisation_months")[product]), term,
                            col("amortisation_months")[product]).astype(np.int64)
    debt_service0 = _debt_service(product, amount * utilisation, amount, rate0, rate0, amortisation,
                                  np.zeros(n, dtype=np.int64))
    dsti0 = _clipped_normal(rng, col("dsti_mean")[product] + boom * BOOM_DSTI_SHIFT, col("dsti_sd")[product],
                            (np.full(n, DSTI_BOUNDS[0]), np.full(n, DSTI_BOUNDS[1])))
    loan_share = col("loan_share_of_debt_service")[product]
    income = np.round(np.clip(debt_service0 / (dsti0 * loan_share), *INCOME_BOUNDS), 2)

    return _Loans(
        product=product, start_month=start_month, term=term, amortisation=amortisation, region=region,
        score=score, amount=amount, rate0=rate0, margin=margin, utilisation=utilisation, ltv0=ltv0, value0=value0,
        senior_lien=senior_share * np.nan_to_num(value0), value_shock=rng.standard_normal(n), income=income,
        other_debt_service=dsti0 * (1 - loan_share) * income,
    )


def _debt_service(product: npt.NDArray[np.int16], balance: FloatArray, amount: FloatArray, rate: FloatArray,
                  rate0: FloatArray, amortisation: IntArray, age: IntArray) -> FloatArray:
    """Annual debt service: the annuity payment (recast on repricing), or interest plus card minimums."""
    schedule = _product_column("schedule")[product]
    variable = _product_column("rate_type")[product] == RATE_TYPES.index("variable")
    fixed_annuity = level_payment(amount, rate0 / MONTHS_PER_YEAR, amortisation)
    recast_annuity = level_payment(balance, rate / MONTHS_PER_YEAR, amortisation - age)
    annuity = np.where(variable, recast_annuity, fixed_annuity) * MONTHS_PER_YEAR
    interest_and_paydown = balance * (rate + _product_column("revolving_paydown")[product])
    return np.where(schedule == REPAYMENT_SCHEDULES.index("annuity"), annuity, interest_and_paydown)


def _state(loans: _Loans, loan: IntArray, month: IntArray, q: IntArray, macro: _Macro) -> _State:
    """Every loan's balance, rate, collateral and true hazard at an observation.

    ``loan`` selects rows of ``loans`` (a loan may be observed in many quarters), ``month`` is the
    observation in months since 1970-01 (ages count whole months to it) and ``q`` the quarter
    position whose macro values apply (a quarter-end observation falls on the next quarter's first
    month but belongs to the quarter that ends). Amortising variable-rate loans follow the schedule
    of their origination rate while their payment is recast at the current rate: the balance
    difference is negligible and keeps the state closed-form.
    """
    product = loans.product[loan]
    age = month - loans.start_month[loan]
    q0 = macro.position(loans.start_month[loan])
    col = _product_column

    rate0 = loans.rate0[loan]
    margin = loans.margin[loan]
    variable = ~np.isnan(margin)
    index_now = macro.rates[col("rate_variable")[product], q] / PERCENT
    rate = np.where(variable, np.clip(index_now + margin, 0.0, MAX_RATE), rate0)

    amount = loans.amount[loan]
    amortisation = loans.amortisation[loan]
    schedule = col("schedule")[product]
    balance = np.select(
        [schedule == REPAYMENT_SCHEDULES.index("annuity"), schedule == REPAYMENT_SCHEDULES.index("revolving")],
        [_annuity_balance(amount, rate0, amortisation, age), amount * loans.utilisation[loan]],
        default=amount,
    )
    debt_service = _debt_service(product, balance, amount, rate, rate0, amortisation, age)
    dsti = (debt_service + loans.other_debt_service[loan]) / loans.income[loan]

    years = age / MONTHS_PER_YEAR
    real_estate = col("collateral_index")[product]
    index_ratio = macro.real_estate[real_estate, q] / macro.real_estate[real_estate, q0]
    beta = np.array([REGION_HPI_BETA[r] for r in REGIONS])[loans.region[loan]]
    market = np.select([real_estate == 0, real_estate == 1],
                       [index_ratio**beta, index_ratio],
                       default=(1.0 - col("depreciation")[product]) ** years)
    volatility = col("collateral_volatility")[product]
    idiosyncratic = np.exp(volatility * np.sqrt(years) * loans.value_shock[loan] - 0.5 * volatility**2 * years)
    collateral_value = loans.value0[loan] * market * idiosyncratic
    ltv = (loans.senior_lien[loan] + balance) / collateral_value

    payment_shock_pp = np.where(variable, (rate - rate0) * PERCENT, 0.0)
    hazard = quarterly_default_probability(
        loans.segment[loan], loans.score[loan], macro.unemployment[q], macro.unemployment_change[q], ltv, dsti,
        payment_shock_pp, age / MONTHS_PER_QUARTER,
    )
    return _State(age_months=age, rate=rate, balance=balance, debt_service=debt_service, dsti=dsti,
                  collateral_value=collateral_value, ltv=ltv, payment_shock_pp=payment_shock_pp, hazard=hazard)


# --- the loan book ---------------------------------------------------------------------------------


def generate_loan_book(n_loans: int, seed: int, as_of: datetime.date) -> pa.Table:
    """A synthetic loan tape of ``n_loans`` live loans at ``as_of``, conforming to ``ARROW_SCHEMA``.

    Deterministic for a seed. Macro values after the last history quarter are held at that quarter.
    Loans are generated in chunks of :data:`BOOK_CHUNK_LOANS` so memory stays bounded for books of
    millions of loans.
    """
    if n_loans < 1:
        raise ValueError(f"n_loans must be positive, got {n_loans}")
    macro = _macro()
    customer_seed, *chunk_seeds = np.random.SeedSequence(seed).spawn(1 + -(-n_loans // BOOK_CHUNK_LOANS))
    customers = _Customers.draw(np.random.default_rng(customer_seed), n_loans)
    tables = []
    for i, chunk_seed in enumerate(chunk_seeds):
        first = i * BOOK_CHUNK_LOANS
        size = min(BOOK_CHUNK_LOANS, n_loans - first)
        tables.append(_book_chunk(np.random.default_rng(chunk_seed), first, size, as_of, customers, macro))
    return pa.concat_tables(tables)


@dataclass(frozen=True)
class _Customers:
    """Separate pools of retail borrowers and firms, with a region and credit quality each."""

    retail: int
    firms: int
    region: npt.NDArray[np.int8]
    quality: FloatArray

    @classmethod
    def draw(cls, rng: np.random.Generator, n_loans: int) -> _Customers:
        firms = max(1, round(n_loans * _commercial_share() * CUSTOMER_POOL_PER_LOAN))
        retail = max(1, round(n_loans * CUSTOMER_POOL_PER_LOAN) - firms)
        return cls(retail, firms, _draw_regions(rng, retail + firms), rng.standard_normal(retail + firms))

    def assign(self, rng: np.random.Generator, segment: npt.NDArray[np.int8]) -> IntArray:
        commercial = np.isin(segment, [SEGMENT_ORDER.index(s) for s in _COMMERCIAL])
        return np.where(commercial, self.retail + rng.integers(0, self.firms, segment.size),
                        rng.integers(0, self.retail, segment.size))


_COMMERCIAL = (Segment.COMMERCIAL_REAL_ESTATE, Segment.COMMERCIAL_INDUSTRIAL)


def _commercial_share() -> float:
    return sum(BOOK_COUNT_SHARES[p.code] for p in PRODUCTS if p.segment in _COMMERCIAL)


def _book_chunk(rng: np.random.Generator, first_id: int, n: int, as_of: datetime.date, customers: _Customers,
                macro: _Macro) -> pa.Table:
    product = _draw_products(rng, n, book=True)
    term = _draw_terms(rng, product)
    # Ages on a book decline (prepayment, growth): exponential with the product's mean, cut at the term.
    mean_age = _product_column("mean_age_months")[product]
    tail = -np.expm1(-(term - 1) / mean_age)
    age = np.clip(np.ceil(-mean_age * np.log1p(-rng.random(n) * tail)), 1, term - 1).astype(np.int64)
    as_of_month = np.full(n, _months(as_of))
    start_month = as_of_month - age

    customer = customers.assign(rng, _product_column("segment")[product])
    own_quality = rng.standard_normal(n)
    quality = (np.sqrt(CUSTOMER_SHARE_OF_SCORE_VARIANCE) * customers.quality[customer]
               + np.sqrt(1 - CUSTOMER_SHARE_OF_SCORE_VARIANCE) * own_quality)
    loans = _originate(rng, product, term, start_month, customers.region[customer], quality, macro)
    state = _state(loans, np.arange(n), as_of_month, macro.position(as_of_month), macro)

    pd_true = 1.0 - (1.0 - state.hazard) ** QUARTERS_PER_YEAR
    days_past_due = _days_past_due(rng, pd_true)
    logit = np.log(pd_true / (1.0 - pd_true)) + BANK_PD_NOISE_SD * rng.standard_normal(n)
    logit += np.where(days_past_due >= DPD_BUCKETS[1][0], DELINQUENT_PD_LOGIT_UPLIFT, 0.0)
    bank_pd = np.where(days_past_due >= DEFAULT_DAYS_PAST_DUE, 1.0, 1.0 / (1.0 + np.exp(-logit)))

    day = rng.integers(0, 28, n).astype("timedelta64[D]")
    start_date = start_month.astype("datetime64[M]").astype("datetime64[D]") + day
    maturity_date = (start_month + term).astype("datetime64[M]").astype("datetime64[D]") + day
    amount_cents = np.rint(loans.amount * CENTS).astype(np.int64)
    secured = np.isin(loans.segment, [SEGMENT_ORDER.index(s) for s in SECURED_SEGMENTS])
    variable = loans.is_variable
    rate_variable = _product_column("rate_variable")[product]

    columns = {
        "LoanId": _ids(BOOK_ID_PREFIX, first_id + np.arange(n)),
        "CustomerId": _ids(CUSTOMER_ID_PREFIX, customer),
        "LoanAmount": _decimal(amount_cents, MONEY),
        "InterestRate": _decimal(_rate_units(state.rate), RATE),
        "LoanStartDate": pa.array(start_date),
        "LoanMaturityDate": pa.array(maturity_date),
        "LoanType": _labels([p.code for p in PRODUCTS], product),
        "RepaymentSchedule": _labels(REPAYMENT_SCHEDULES, _product_column("schedule")[product]),
        "CurrentBalance": _decimal(np.minimum(np.rint(state.balance * CENTS).astype(np.int64), amount_cents), MONEY),
        "DefaultRiskScore": _decimal(_rate_units(bank_pd), RATE),
        "RateType": _labels(RATE_TYPES, variable.astype(np.int8)),
        "ReferenceIndex": _labels(REFERENCE_INDICES, rate_variable, valid=variable),
        "RateMargin": _decimal(_rate_units(np.nan_to_num(loans.margin)), RATE, valid=variable),
        "BorrowerIncome": _decimal(np.rint(loans.income * CENTS).astype(np.int64), MONEY),
        "CreditScore": pa.array(loans.score.astype(np.int16)),
        "CollateralValue": _decimal(np.rint(np.nan_to_num(state.collateral_value) * CENTS).astype(np.int64), MONEY,
                                    valid=secured),
        "SeniorLienBalance": _decimal(np.rint(loans.senior_lien * CENTS).astype(np.int64), MONEY,
                                      valid=loans.senior_lien > 0),
        "Region": _labels(REGIONS, loans.region),
        "ProductSegment": _labels([s.value for s in SEGMENT_ORDER], loans.segment),
        "DaysPastDue": pa.array(days_past_due.astype(np.int32)),
    }
    return pa.Table.from_arrays(list(columns.values()), schema=ARROW_SCHEMA)


def _days_past_due(rng: np.random.Generator, pd_12m: FloatArray) -> npt.NDArray[np.int64]:
    """Arrears concentrate on risky loans: P(in arrears) grows with the true PD."""
    n = pd_12m.size
    delinquent = rng.random(n) < np.minimum(DELINQUENCY_BASE + DELINQUENCY_PER_PD * pd_12m,
                                            MAX_DELINQUENCY_PROBABILITY)
    weights = np.array([w for *_, w in DPD_BUCKETS])
    bucket = rng.choice(len(DPD_BUCKETS), size=n, p=weights / weights.sum())
    low = np.array([b[0] for b in DPD_BUCKETS])[bucket]
    high = np.array([b[1] for b in DPD_BUCKETS])[bucket]
    return np.where(delinquent, rng.integers(low, high), 0)


def _rate_units(rate: FloatArray) -> IntArray:
    return np.rint(rate * 10**RATE_DECIMALS).astype(np.int64)


def _decimal(unscaled: IntArray, type_: pa.Decimal128Type, valid: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    """Exact decimals from integer units (cents, 1e-8): no float-to-decimal rounding surprises, and fast."""
    words = np.empty((unscaled.size, 2), dtype=np.int64)
    words[:, 0] = unscaled
    words[:, 1] = unscaled >> 63  # two's-complement sign extension to 128 bits
    if valid is None:
        return pa.Array.from_buffers(type_, unscaled.size, [None, pa.py_buffer(words)], null_count=0)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(type_, unscaled.size, [bitmap, pa.py_buffer(words)],
                                 null_count=int(unscaled.size - valid.sum()))


def _labels(vocabulary: Sequence[str], codes: npt.NDArray[np.integer],
            valid: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=None if valid is None else ~valid)
    return pa.array(vocabulary, type=pa.string()).take(indices)


def _ids(prefix: str, numbers: npt.NDArray[np.integer]) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(numbers.astype(np.int64)).cast(pa.string()), width=10, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


# --- the performance history -------------------------------------------------------------------------


def generate_performance_history(n_loans: int, seed: int) -> pd.DataFrame:
    """Quarterly loan performance panel, 2005Q1 to the last Fed history quarter, for PD modelling.

    ``n_loans`` loans originate uniformly over the months from 2000Q1 (or later, so that each is
    still outstanding in 2005Q1) to the last history quarter; loans originated before 2005 enter the
    panel as the book of 2005Q1. A loan has one row per quarter end it is outstanding at (at least
    one), and leaves after the quarter it defaults in (``DefaultFlag`` 1), when it prepays or when it
    matures.

    Rates, LTV and DSTI are floats (annual fractions), not the tape's decimals: this is model input.
    ``PaymentShockPoints`` is the rate now minus the rate at origination in percentage points (0 for
    fixed-rate loans). ``DSTI`` is what a bank's tape shows: this loan's annual debt service over the
    borrower's income. The true process also counts the borrower's other debts, which no tape
    carries, so models learn from the observable ratio, as they would in a real bank.
    ``TrueDefaultProbability`` is the generator's true quarterly hazard (synthetic data only; see
    ``models/true_default_process.py``); the macro columns are the Fed history of the quarter, their
    4-quarter changes (:func:`pipelines.data.macro.quarterly_changes`) and the two unemployment drivers of
    the true process.
    """
    if n_loans < 1:
        raise ValueError(f"n_loans must be positive, got {n_loans}")
    macro = _macro()
    rng = np.random.default_rng(seed)
    first_q = HISTORY_START.ordinal
    last_q = macro.first_quarter + macro.rates.shape[1] - 1

    product = _draw_products(rng, n_loans, book=False)
    term = _draw_terms(rng, product)
    # Earliest start: still outstanding at the end of the first panel quarter.
    earliest = np.maximum(ORIGINATION_START.ordinal * MONTHS_PER_QUARTER,
                          (first_q + 1) * MONTHS_PER_QUARTER - term + 1)
    latest = last_q * MONTHS_PER_QUARTER + MONTHS_PER_QUARTER - 1
    start_month = earliest + (rng.random(n_loans) * (latest - earliest + 1)).astype(np.int64)
    loans = _originate(rng, product, term, start_month, _draw_regions(rng, n_loans),
                       rng.standard_normal(n_loans), macro)

    # One candidate row per loan and quarter end from entry to maturity or the end of history.
    first = np.maximum(start_month // MONTHS_PER_QUARTER, first_q)
    last = np.minimum((start_month + term - 1) // MONTHS_PER_QUARTER - 1, last_q)
    counts = last - first + 1
    loan = np.repeat(np.arange(n_loans), counts)
    group_start = np.cumsum(counts) - counts
    quarter = np.repeat(first, counts) + np.arange(loan.size) - np.repeat(group_start, counts)
    position = quarter - macro.first_quarter
    state = _state(loans, loan, (quarter + 1) * MONTHS_PER_QUARTER, position, macro)

    prepay = _prepayment_probability(loans, loan, state, position, macro)
    prepay[group_start] = 0.0  # every loan is seen at least once: none prepays the quarter it enters
    draw = rng.random(loan.size)
    default = draw < state.hazard
    event = draw < state.hazard + prepay
    # Keep rows before a loan's first event, and the event row itself when it is a default.
    events_before = np.cumsum(event) - event
    keep = (events_before == np.repeat(events_before[group_start], counts)) & (default | ~event)
    return _panel(loans, loan[keep], quarter[keep], _select(state, keep), default[keep], macro)


def _prepayment_probability(loans: _Loans, loan: IntArray, state: _State, q: IntArray, macro: _Macro) -> FloatArray:
    """Quarterly prepayment: base rate, more when the market rate fell below the loan's (fixed-rate
    refinancing), much less under water (no lender refinances negative equity)."""
    product = loans.product[loan]
    variable_code = _product_column("rate_variable")[product]
    rate_fall_pp = macro.rates[variable_code, macro.position(loans.start_month[loan])] - macro.rates[variable_code, q]
    incentive = np.where(loans.is_variable[loan], 0.0, np.maximum(rate_fall_pp, 0.0))
    under_water = np.nan_to_num(state.ltv) > 1.0
    probability = _product_column("prepayment")[product] * (1.0 + REFI_BOOST_PER_PP * incentive)
    probability *= np.where(under_water, NEGATIVE_EQUITY_PREPAYMENT_FACTOR, 1.0)
    return np.minimum(probability, MAX_PREPAYMENT)


def _select(state: _State, keep: npt.NDArray[np.bool_]) -> _State:
    return _State(**{name: getattr(state, name)[keep] for name in state.__dataclass_fields__})


def _panel(loans: _Loans, loan: IntArray, quarter: IntArray, state: _State, default: npt.NDArray[np.bool_],
           macro: _Macro) -> pd.DataFrame:
    product = loans.product[loan]
    col = _product_column
    variable = loans.is_variable[loan]
    position = quarter - macro.first_quarter
    quarter_end = macro.features.index.to_timestamp(how="end").to_numpy().astype("datetime64[D]")

    def categorical(codes: npt.NDArray[np.integer], vocabulary: Sequence[str]) -> pd.Categorical:
        return pd.Categorical.from_codes(codes.astype(np.int64), categories=list(vocabulary))

    reference = np.where(variable, col("rate_variable")[product], -1)
    frame = pd.DataFrame({
        "LoanId": _ids(HISTORY_ID_PREFIX, loan).to_pandas(),
        "ObservationQuarter": quarter_end[position],
        "ProductSegment": categorical(loans.segment[loan], [s.value for s in SEGMENT_ORDER]),
        "LoanType": categorical(product, [p.code for p in PRODUCTS]),
        "RateType": categorical(variable.astype(np.int8), RATE_TYPES),
        "ReferenceIndex": categorical(reference, REFERENCE_INDICES),
        "RateMargin": loans.margin[loan],
        "CreditScore": loans.score[loan].astype(np.int16),
        "BorrowerIncome": loans.income[loan],
        "LoanAmount": loans.amount[loan],
        "OriginationRate": loans.rate0[loan],
        "OriginationLTV": loans.ltv0[loan],
        "Region": categorical(loans.region[loan], REGIONS),
        "RepaymentSchedule": categorical(col("schedule")[product], REPAYMENT_SCHEDULES),
        "TermMonths": loans.term[loan].astype(np.int16),
        "LoanStartDate": loans.start_month[loan].astype("datetime64[M]").astype("datetime64[D]"),
        "LoanAgeQuarters": state.age_months / MONTHS_PER_QUARTER,
        "CurrentBalance": state.balance,
        "InterestRate": state.rate,
        "CurrentLTV": state.ltv,
        "DSTI": state.debt_service / loans.income[loan],
        "PaymentShockPoints": state.payment_shock_pp,
    })
    macro_columns = macro.features.iloc[position].reset_index(drop=True)
    frame = pd.concat([frame, macro_columns], axis=1)
    frame["DefaultFlag"] = default.astype(np.int8)
    frame["TrueDefaultProbability"] = state.hazard
    return frame
