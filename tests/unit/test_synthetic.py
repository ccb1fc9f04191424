"""Synthetic loan book and performance history, and the true default process behind them."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.projection import PD_FEATURES
from models.segments import SEGMENT_ORDER, segment_codes
from models.true_default_process import COEFFICIENTS, quarterly_default_probability
from pipelines.data.contract import (
    ARROW_SCHEMA,
    REFERENCE_INDICES,
    REGIONS,
    REPAYMENT_SCHEDULES,
    SECURED_SEGMENTS,
    Segment,
)
from pipelines.data.macro import PERCENT, REFERENCE_INDEX_VARIABLE, load_history
from pipelines.data.synthetic import (
    BOOK_COUNT_SHARES,
    BOOK_EXPOSURE_MIX,
    PRODUCTS,
    generate_loan_book,
    generate_performance_history,
)

AS_OF = datetime.date(2025, 12, 31)
BOOK_LOANS = 20_000
HISTORY_LOANS = 20_000


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_loan_book(BOOK_LOANS, seed=42, as_of=AS_OF)


@pytest.fixture(scope="module")
def book(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for name in ("LoanAmount", "CurrentBalance", "InterestRate", "RateMargin", "DefaultRiskScore",
                 "BorrowerIncome", "CollateralValue", "SeniorLienBalance"):
        frame[name] = frame[name].astype(float)
    return frame


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return generate_performance_history(HISTORY_LOANS, seed=42)


# --- loan book --------------------------------------------------------------------------------------


def test_book_conforms_to_the_contract_schema(table: pa.Table) -> None:
    assert table.schema == ARROW_SCHEMA
    assert table.num_rows == BOOK_LOANS


def test_book_is_deterministic_for_a_seed(table: pa.Table) -> None:
    assert generate_loan_book(BOOK_LOANS, seed=42, as_of=AS_OF).equals(table)


def test_book_differs_between_seeds(table: pa.Table) -> None:
    other = generate_loan_book(BOOK_LOANS, seed=43, as_of=AS_OF)
    assert not other.equals(table)
    assert not other["LoanAmount"].equals(table["LoanAmount"])


def test_book_spans_several_chunks_with_unique_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipelines.data.synthetic.BOOK_CHUNK_LOANS", 700)
    table = generate_loan_book(2_000, seed=1, as_of=AS_OF)
    assert table.schema == ARROW_SCHEMA
    assert pc.count_distinct(table["LoanId"]).as_py() == 2_000


def test_book_rejects_an_empty_book() -> None:
    with pytest.raises(ValueError, match="positive"):
        generate_loan_book(0, seed=1, as_of=AS_OF)


def test_book_money_is_exact_cents(table: pa.Table) -> None:
    assert table.schema.field("LoanAmount").type == pa.decimal128(18, 2)
    amount = table["LoanAmount"].to_pylist()[:5]
    assert all(a.as_tuple().exponent == -2 for a in amount)


def test_book_dates_are_ordered_around_the_as_of_date(book: pd.DataFrame) -> None:
    start, maturity = pd.to_datetime(book.LoanStartDate), pd.to_datetime(book.LoanMaturityDate)
    assert (start < maturity).all()
    assert (start < pd.Timestamp(AS_OF)).all()
    assert (maturity > pd.Timestamp(AS_OF)).all()


def test_book_balances_are_within_amounts(book: pd.DataFrame) -> None:
    assert (book.CurrentBalance <= book.LoanAmount).all()
    assert (book.CurrentBalance >= 0).all()
    assert (book.LoanAmount > 0).all()


def test_book_rate_terms_follow_the_rate_type(book: pd.DataFrame) -> None:
    variable = book.RateType == "variable"
    assert set(book.RateType) == {"fixed", "variable"}
    assert book.loc[variable, ["ReferenceIndex", "RateMargin"]].notna().all().all()
    assert book.loc[~variable, ["ReferenceIndex", "RateMargin"]].isna().all().all()
    assert set(book.loc[variable, "ReferenceIndex"]) <= set(REFERENCE_INDICES)


def test_variable_rates_are_the_index_at_as_of_plus_margin(book: pd.DataFrame) -> None:
    quarter = load_history().loc[pd.Period(AS_OF, freq="Q")]
    variable = book[book.RateType == "variable"]
    index = variable.ReferenceIndex.map(lambda name: quarter[REFERENCE_INDEX_VARIABLE[name]] / PERCENT)
    expected = (index.astype(float) + variable.RateMargin).clip(0.0, 0.40)
    np.testing.assert_allclose(variable.InterestRate, expected, atol=1e-8)


def test_fixed_rates_carry_the_origination_market_rate(book: pd.DataFrame) -> None:
    """A 30-year fixed mortgage from 2021 (rates near 3 %) costs less than one from 2024 (near 7 %)."""
    mortgages = book[book.LoanType == "MORTGAGE_30Y_FIXED"]
    year = pd.to_datetime(mortgages.LoanStartDate).dt.year
    assert mortgages.InterestRate[year == 2021].median() + 0.025 < mortgages.InterestRate[year == 2024].median()


def test_amortising_fixed_balances_follow_the_annuity_schedule(book: pd.DataFrame) -> None:
    fully_amortising = [p.code for p in PRODUCTS if p.schedule == "annuity" and p.rate_type == "fixed"
                        and p.amortisation_months is None]
    loans = book[book.LoanType.isin(fully_amortising)]
    start, maturity = pd.to_datetime(loans.LoanStartDate), pd.to_datetime(loans.LoanMaturityDate)
    n = (maturity.dt.year - start.dt.year) * 12 + maturity.dt.month - start.dt.month
    k = (AS_OF.year - start.dt.year) * 12 + AS_OF.month - start.dt.month
    r = loans.InterestRate / 12
    expected = loans.LoanAmount * ((1 + r) ** n - (1 + r) ** k) / ((1 + r) ** n - 1)
    np.testing.assert_allclose(loans.CurrentBalance, expected, rtol=1e-6, atol=0.01)


def test_revolving_lines_are_drawn_within_their_limit(book: pd.DataFrame) -> None:
    revolving = book[book.RepaymentSchedule == "revolving"]
    utilisation = revolving.CurrentBalance / revolving.LoanAmount
    assert 0.2 < utilisation.mean() < 0.7
    assert utilisation.std() > 0.1


def test_secured_segments_have_collateral_and_unsecured_none(book: pd.DataFrame) -> None:
    secured = book.ProductSegment.isin([s.value for s in SECURED_SEGMENTS])
    assert book.loc[secured, "CollateralValue"].notna().all()
    assert (book.loc[secured, "CollateralValue"] > 0).all()
    assert book.loc[~secured, "CollateralValue"].isna().all()


def test_mortgage_ltv_is_plausible(book: pd.DataFrame) -> None:
    mortgages = book[book.ProductSegment == Segment.FIRST_LIEN_MORTGAGE.value]
    ltv = mortgages.CurrentBalance / mortgages.CollateralValue
    assert 0.4 < ltv.median() < 0.8
    assert ltv.quantile(0.99) < 1.2


def test_bank_pd_is_a_probability_ranking_risk(book: pd.DataFrame) -> None:
    assert book.DefaultRiskScore.between(0, 1).all()
    mean_pd = book.groupby("ProductSegment").DefaultRiskScore.mean()
    assert mean_pd[Segment.CREDIT_CARD.value] > mean_pd[Segment.FIRST_LIEN_MORTGAGE.value] * 3
    low, high = book.CreditScore < 650, book.CreditScore > 760
    assert book.DefaultRiskScore[low].median() > 3 * book.DefaultRiskScore[high].median()


def test_arrears_are_a_small_risky_tail(book: pd.DataFrame) -> None:
    assert 0.85 < (book.DaysPastDue == 0).mean() < 0.99
    assert book.DaysPastDue.max() >= 90
    assert (book.loc[book.DaysPastDue >= 90, "DefaultRiskScore"] == 1).all()


def test_book_categories_scores_and_regions(book: pd.DataFrame) -> None:
    assert book.CreditScore.between(300, 850).all()
    assert set(book.Region) == set(REGIONS)
    assert set(book.ProductSegment) == {s.value for s in Segment}
    assert set(book.RepaymentSchedule) == set(REPAYMENT_SCHEDULES)
    # LoanType is finer than the segment and never straddles two segments.
    assert book.LoanType.nunique() > book.ProductSegment.nunique()
    assert (book.groupby("LoanType").ProductSegment.nunique() == 1).all()


def test_segment_mix_by_exposure_is_the_calibration_target() -> None:
    # A seeded 200,000-loan book against BOOK_EXPOSURE_MIX (docs/calibration.md). Retail segments are granular and
    # land within a point; CRE and C&I sit on a few hundred lognormal names, so a few large loans move their
    # shares by a few points from seed to seed.
    frame = generate_loan_book(200_000, seed=42, as_of=AS_OF).select(["ProductSegment", "CurrentBalance"]).to_pandas()
    exposure = frame.CurrentBalance.astype(float).groupby(frame.ProductSegment).sum()
    share = exposure / exposure.sum()
    assert sum(BOOK_EXPOSURE_MIX.values()) == pytest.approx(1.0)
    for segment, target in BOOK_EXPOSURE_MIX.items():
        commercial = segment in (Segment.COMMERCIAL_REAL_ESTATE, Segment.COMMERCIAL_INDUSTRIAL)
        assert share[segment.value] == pytest.approx(target, abs=0.04 if commercial else 0.01), segment
    assert set(BOOK_COUNT_SHARES) == {p.code for p in PRODUCTS}
    assert sum(p.share for p in PRODUCTS) == pytest.approx(1.0)


def test_many_small_retail_loans_and_a_few_large_commercial_names(book: pd.DataFrame) -> None:
    count = book.ProductSegment.value_counts(normalize=True)
    assert count[Segment.CREDIT_CARD.value] > 0.6
    assert count[Segment.COMMERCIAL_REAL_ESTATE.value] + count[Segment.COMMERCIAL_INDUSTRIAL.value] < 0.03
    for segment in (Segment.COMMERCIAL_REAL_ESTATE, Segment.COMMERCIAL_INDUSTRIAL):
        balances = book.loc[book.ProductSegment == segment.value, "CurrentBalance"].sort_values(ascending=False)
        assert balances.iloc[:10].sum() / balances.sum() > 0.25, segment  # name concentration
    cards = book.loc[book.ProductSegment == Segment.CREDIT_CARD.value, "CurrentBalance"]
    assert cards.max() / cards.sum() < 0.01


def test_some_customers_hold_several_loans_in_one_region(book: pd.DataFrame) -> None:
    per_customer = book.groupby("CustomerId").agg(loans=("LoanId", "size"), regions=("Region", "nunique"))
    assert 0.05 < (per_customer.loans > 1).mean() < 0.5
    assert (per_customer.regions == 1).all()
    assert book.LoanId.is_unique


@pytest.mark.slow
# --- performance history ----------------------------------------------------------------------------


def test_history_is_deterministic_and_seed_dependent(history: pd.DataFrame) -> None:
    small = generate_performance_history(500, seed=5)
    pd.testing.assert_frame_equal(small, generate_performance_history(500, seed=5))
    assert not small.equals(generate_performance_history(500, seed=6))


def test_history_covers_every_quarter_from_2005(history: pd.DataFrame) -> None:
    quarters = history.ObservationQuarter.dt.to_period("Q")
    expected = pd.period_range("2005Q1", load_history().index[-1], freq="Q")
    assert (quarters.value_counts().reindex(expected) > 100).all()
    assert (history.ObservationQuarter == history.ObservationQuarter.dt.to_period("Q").dt.end_time.dt.normalize()).all()
    assert history.LoanId.nunique() == HISTORY_LOANS


def test_history_loans_are_observed_in_consecutive_quarters_until_they_leave(history: pd.DataFrame) -> None:
    quarter = history.ObservationQuarter.dt.to_period("Q").array.asi8
    same_loan = history.LoanId.to_numpy()[1:] == history.LoanId.to_numpy()[:-1]
    assert (np.diff(quarter)[same_loan] == 1).all()
    defaults = history.groupby("LoanId").DefaultFlag.agg(["sum", "last"])
    assert (defaults["sum"] <= 1).all()
    assert (defaults["sum"] == defaults["last"]).all()  # a default is the loan's last row


def test_history_point_in_time_values(history: pd.DataFrame) -> None:
    assert (history.CurrentBalance <= history.LoanAmount + 1e-6).all()
    assert (pd.to_datetime(history.LoanStartDate) < history.ObservationQuarter).all()
    assert (history.LoanAgeQuarters > 0).all()
    assert history.TrueDefaultProbability.between(0, 1, inclusive="neither").all()
    secured = history.ProductSegment.isin([s.value for s in SECURED_SEGMENTS])
    assert history.loc[secured, "CurrentLTV"].notna().all()
    assert history.loc[~secured, "CurrentLTV"].isna().all()
    fixed = history.RateType == "fixed"
    assert (history.loc[fixed, "InterestRate"] == history.loc[fixed, "OriginationRate"]).all()
    assert history.loc[fixed, "ReferenceIndex"].isna().all()
    assert history.loc[~fixed, ["ReferenceIndex", "RateMargin"]].notna().all().all()
    shock = (history.InterestRate - history.OriginationRate) * 100
    np.testing.assert_allclose(history.PaymentShockPoints, shock.where(~fixed, 0.0), atol=1e-9)


def test_history_has_every_pd_model_feature(history: pd.DataFrame) -> None:
    assert set(PD_FEATURES) <= set(history.columns)


def test_history_carries_the_macro_of_each_quarter(history: pd.DataFrame) -> None:
    macro = load_history()
    row = history[history.ObservationQuarter == pd.Timestamp("2009-06-30")].iloc[0]
    assert row.unemployment_rate == macro.loc["2009Q2", "unemployment_rate"]
    assert row.house_price_index_chg_4q == pytest.approx((139.3 / 158.3 - 1) * 100)


def test_realised_defaults_match_the_true_hazard(history: pd.DataFrame) -> None:
    realised, expected = history.DefaultFlag.sum(), history.TrueDefaultProbability.sum()
    assert abs(realised - expected) < 4 * np.sqrt(expected)


def test_2009_crisis_peak_exceeds_2006(history: pd.DataFrame) -> None:
    year = history.ObservationQuarter.dt.year
    by_year = history.groupby([year, "ProductSegment"], observed=True)
    realised = by_year.DefaultFlag.mean().unstack()
    mortgage = Segment.FIRST_LIEN_MORTGAGE.value
    assert realised.loc[2009, mortgage] > 2 * realised.loc[2006, mortgage]
    true_rate = by_year.TrueDefaultProbability.mean().unstack()
    assert (true_rate.loc[2009] > true_rate.loc[2006]).all()
    assert true_rate[mortgage].idxmax() in (2009, 2010)


def test_default_rates_are_realistic(history: pd.DataFrame) -> None:
    year = history.ObservationQuarter.dt.year
    true_rate = history.groupby([year, "ProductSegment"], observed=True).TrueDefaultProbability.mean().unstack()
    mortgage, card = true_rate[Segment.FIRST_LIEN_MORTGAGE.value], true_rate[Segment.CREDIT_CARD.value]
    # Quarterly rates (docs/calibration.md): mortgages ~0.06-0.09 % in calm years, ~0.8 % at the 2009 peak; cards
    # ~0.9-1.3 % (3.5-5 % a year, US card charge-off rates) rising to ~2 %.
    assert mortgage.loc[[2005, 2006, 2017, 2018, 2019]].between(0.0004, 0.003).all()
    assert 0.007 < mortgage.max() < 0.03
    assert card.loc[[2006, 2017, 2018, 2019]].between(0.007, 0.02).all()
    assert card.max() > card.loc[2006] * 1.3


def test_variable_rate_loans_feel_the_2022_rate_rise(history: pd.DataFrame) -> None:
    arms = history[history.LoanType == "MORTGAGE_5_1_ARM"]
    quarter = arms.ObservationQuarter
    dsti_2021 = arms.loc[quarter.dt.year == 2021, "DSTI"].median()
    dsti_2024 = arms.loc[quarter.dt.year == 2024, "DSTI"].median()
    assert dsti_2024 > dsti_2021 + 0.03


# --- true default process ---------------------------------------------------------------------------

segments = st.integers(min_value=0, max_value=len(SEGMENT_ORDER) - 1)
scores = st.floats(min_value=300, max_value=850)
unemployment = st.floats(min_value=2, max_value=15)
changes = st.floats(min_value=-5, max_value=10)
ltvs = st.floats(min_value=0, max_value=2.5)
dstis = st.floats(min_value=0, max_value=1.5)
shocks = st.floats(min_value=-5, max_value=10)
ages = st.floats(min_value=0, max_value=120)


@given(segments, scores, unemployment, changes, ltvs, ltvs, dstis, shocks, ages)
def test_true_process_is_monotone_in_ltv(segment, score, u, du, ltv_a, ltv_b, dsti, shock, age) -> None:
    low, high = sorted((ltv_a, ltv_b))
    p_low, p_high = (quarterly_default_probability(segment, score, u, du, ltv, dsti, shock, age) for ltv in (low, high))
    assert p_low <= p_high


@given(segments, scores, unemployment, unemployment, changes, ltvs, dstis, shocks, ages)
def test_true_process_is_monotone_in_unemployment(segment, score, u_a, u_b, du, ltv, dsti, shock, age) -> None:
    low, high = sorted((u_a, u_b))
    p_low, p_high = (quarterly_default_probability(segment, score, u, du, ltv, dsti, shock, age) for u in (low, high))
    assert p_low <= p_high


@given(segments, scores, scores, unemployment, changes, ltvs, dstis, shocks, ages)
def test_true_process_is_decreasing_in_credit_score(segment, s_a, s_b, u, du, ltv, dsti, shock, age) -> None:
    low, high = sorted((s_a, s_b))
    p_low, p_high = (quarterly_default_probability(segment, s, u, du, ltv, dsti, shock, age) for s in (low, high))
    assert 0 < p_high <= p_low < 1


def test_true_process_negative_equity_bites_harder_in_unemployment() -> None:
    """The double trigger: the extra risk of negative equity grows with unemployment."""
    mortgage = SEGMENT_ORDER.index(Segment.FIRST_LIEN_MORTGAGE)

    def logit(ltv: float, u: float) -> float:
        p = quarterly_default_probability(mortgage, 720, u, 0.0, ltv, 0.3, 0.0, 20)
        return float(np.log(p / (1 - p)))

    assert logit(1.2, 9.0) - logit(0.7, 9.0) > logit(1.2, 5.0) - logit(0.7, 5.0) + 0.5


def test_true_process_payment_shock_and_dsti_threshold() -> None:
    mortgage = SEGMENT_ORDER.index(Segment.FIRST_LIEN_MORTGAGE)

    def p(dsti: float, shock: float) -> float:
        return float(quarterly_default_probability(mortgage, 720, 5.0, 0.0, 0.7, dsti, shock, 20))

    assert p(0.40, 0.0) == pytest.approx(p(0.30, 0.0), rel=0.01)  # below the 43 % threshold DSTI is ~neutral
    assert p(0.55, 0.0) > 1.5 * p(0.40, 0.0)
    assert p(0.40, 4.0) > p(0.40, 0.0)
    assert p(0.40, -4.0) == p(0.40, 0.0)  # falling rates do not help
    assert p(0.40, 4.0) / p(0.40, 0.0) > p(0.20, 4.0) / p(0.20, 0.0)  # the shock hurts stretched borrowers more


def test_true_process_dsti_cliff_is_a_near_step_and_a_reset_can_push_a_borrower_over_it() -> None:
    """Past 50 % DSTI the odds jump (x2 in all, most of it within 8 points of DSTI, on top of the 43 % hinge), so the
    same 2-point rate reset costs a borrower just below the cliff far more than one well below it."""
    mortgage = SEGMENT_ORDER.index(Segment.FIRST_LIEN_MORTGAGE)

    def logit(dsti: float, shock: float = 0.0) -> float:
        p = quarterly_default_probability(mortgage, 720, 5.0, 0.0, 0.7, dsti, shock, 20)
        return float(np.log(p / (1 - p)))

    hinge = COEFFICIENTS[Segment.FIRST_LIEN_MORTGAGE].dsti_excess
    cliff = COEFFICIENTS[Segment.FIRST_LIEN_MORTGAGE].dsti_cliff
    jump = logit(0.54) - logit(0.46) - hinge * 0.08
    assert 0.7 * cliff < jump <= cliff  # three quarters of the cliff within 4 points either side
    reset_near_cliff = logit(0.52, 2.0) - logit(0.47, 0.0)  # the reset lifts DSTI 0.47 -> 0.52
    reset_far_below = logit(0.30, 2.0) - logit(0.25, 0.0)
    assert reset_near_cliff > reset_far_below + 0.5 * cliff


def test_true_process_strategic_default_takes_half_the_hazard_at_minus_50_percent_equity() -> None:
    """Bhutta, Dokko and Shan (2010): when equity falls below -50 % of the home's value, half of the
    defaults are purely strategic. What the mortgage logit adds beyond its LTV hinges (at 5 %
    unemployment the double trigger is off) must double the odds at LTV 1.5 and be negligible below 100 % LTV."""
    mortgage = SEGMENT_ORDER.index(Segment.FIRST_LIEN_MORTGAGE)
    c = COEFFICIENTS[Segment.FIRST_LIEN_MORTGAGE]

    def beyond_hinges(ltv: float) -> float:
        p, p0 = (quarterly_default_probability(mortgage, 720, 5.0, 0.0, x, 0.3, 0.0, 20) for x in (ltv, 0.5))
        hinges = c.ltv_over_80 * max(ltv - 0.8, 0.0) + c.ltv_over_100 * max(ltv - 1.0, 0.0)
        return float(np.log(p / (1 - p)) - np.log(p0 / (1 - p0)) - hinges)

    assert beyond_hinges(1.50) == pytest.approx(np.log(2.0), abs=0.03)
    assert abs(beyond_hinges(0.95)) < 0.02  # about 1 % on the odds short of negative equity
    assert beyond_hinges(2.0) > beyond_hinges(1.62) > beyond_hinges(1.5)
    assert COEFFICIENTS[Segment.CREDIT_CARD].strategic == 0.0  # unsecured: no home to walk away from


def test_true_process_unsecured_ltv_is_neutral_and_arrays_broadcast() -> None:
    codes = segment_codes([s.value for s in SEGMENT_ORDER])
    with_nan = quarterly_default_probability(codes, 700, 5.0, 0.0, np.nan, 0.3, 0.0, 8)
    with_zero = quarterly_default_probability(codes, 700, 5.0, 0.0, 0.0, 0.3, 0.0, 8)
    assert with_nan.shape == (len(SEGMENT_ORDER),)
    np.testing.assert_array_equal(with_nan, with_zero)


def test_segment_codes_reject_unknown_segments() -> None:
    with pytest.raises(ValueError, match="boat_loan"):
        segment_codes(["heloc", "boat_loan"])


def test_heloc_tape_carries_the_first_lien_for_a_combined_ltv(book: pd.DataFrame) -> None:
    helocs = book[book.ProductSegment == Segment.HELOC.value]
    others = book[book.ProductSegment != Segment.HELOC.value]
    assert helocs.SeniorLienBalance.notna().all() and (helocs.SeniorLienBalance > 0).all()
    assert others.SeniorLienBalance.isna().all()
    # CollateralValue is the whole property: the first lien alone is 45-70 % of it at origination.
    first_lien_share = helocs.SeniorLienBalance / helocs.CollateralValue
    assert 0.3 < first_lien_share.median() < 0.9


def test_heloc_features_and_lgd_see_the_first_lien(table: pa.Table) -> None:
    from models.lgd import COLLATERAL_TERMS, stressed_lgd
    from pipelines.data.features import build_features
    from pipelines.engine.simulation import book_arrays

    book = book_arrays(build_features(table, AS_OF))
    heloc = book.segment == SEGMENT_ORDER.index(Segment.HELOC)
    ltv = (book.senior_liens + book.balance) / book.collateral
    # The PD model learnt HELOCs on combined LTV (history CurrentLTV, origination 55-95 %): scored on the same.
    assert np.median(ltv[heloc]) > 0.45
    # A 20 % house-price fall leaves little behind a first lien: many HELOCs lose more than their floor (read as
    # equity, as before, the property covered every line many times and all sat at the floor).
    lgd = stressed_lgd(book.segment[heloc], book.balance[heloc], book.collateral[heloc], 0.8,
                       book.senior_liens[heloc])
    assert (lgd > COLLATERAL_TERMS[Segment.HELOC].floor + 1e-9).mean() > 0.2
    assert (lgd == 1.0).mean() > 0.1
