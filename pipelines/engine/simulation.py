"""The stress simulation engine: plan batches -> simulate each (scenario, batch) -> reduce.

A batch is a contiguous slice of the feature table. Simulating a batch projects its loans under
one scenario (:func:`models.projection.project_book`), writes the per-loan results, and returns
*additive* partial results: the exposure histogram of the Monte Carlo
(:class:`models.portfolio_loss.ExposureHistogram`, exact integer sums) and expected-value
aggregates by segment and quarter. The reduce step adds the partials (in any order, with the same
result), runs the Monte Carlo over systematic factors keyed by (seed, scenario, quarter), and
computes the loss distribution, VaR, expected shortfall and the CET1 path. Results therefore do not
depend on the number of batches, workers or the engine that ran them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from models import loss_statistics as stats
from models import standardized
from models.amortisation import ScheduleCode
from models.basel import (
    QUALIFYING_REVOLVING_CORRELATION,
    RESIDENTIAL_MORTGAGE_CORRELATION,
    AssetClass,
    asset_class_codes,
    asset_correlation,
    basel3_pd_floors,
    risk_weight,
)
from models.capital import BalanceSheet, PPNRModel, allowance_path, project_capital, provisions
from models.lgd import stressed_lgd
from models.portfolio_loss import (
    DEFAULT_FACTOR_MODEL,
    DEFAULT_FACTOR_PERSISTENCE,
    ExposureHistogram,
    FactorModel,
    simulate_losses,
)
from models.projection import (
    CRE_PRICES,
    DEPRECIATING,
    HOUSE_PRICES,
    BookArrays,
    MacroPath,
    PDFunction,
    in_default,
    income_missing,
    project_book,
)
from models.segments import SEGMENT_NAMES, segment_codes
from pipelines.data.contract import REFERENCE_INDICES, Segment
from pipelines.data.macro import REFERENCE_INDEX_VARIABLE, join_history
from pipelines.engine.scenarios import Scenario
from pipelines.settings import CapitalApproach, RWAPath, StressSettings

VAR_LEVELS = (0.99, 0.999)
ES_LEVELS = (0.975, 0.99)
# Fixed correlation classes: PD-dependent Basel correlations are snapped to these levels, so a loan's
# class depends on the loan alone (never on which batch it is in).
OTHER_RETAIL_LEVELS = (0.03, 0.06, 0.09, 0.12, 0.16)
CORPORATE_LEVELS = (0.12, 0.15, 0.18, 0.21, 0.24)
CLASS_RHO = np.array([RESIDENTIAL_MORTGAGE_CORRELATION, QUALIFYING_REVOLVING_CORRELATION,
                      *OTHER_RETAIL_LEVELS, *CORPORATE_LEVELS])
# |z| above which the Monte Carlo EL is declared inconsistent with the analytic EL (see self_check).
SELF_CHECK_MAX_Z = 4.0
FNV_OFFSET, FNV_PRIME = np.uint64(14695981039346656037), np.uint64(1099511628211)  # 64-bit FNV-1a (loan_keys)
SQUARE_UNIT = 1e4  # currency^2 per unit of the squared loss weights (room for 5M large loans)
COLLATERAL_INDEX = {Segment.FIRST_LIEN_MORTGAGE: HOUSE_PRICES, Segment.HELOC: HOUSE_PRICES,
                    Segment.COMMERCIAL_REAL_ESTATE: CRE_PRICES}


DEFAULT_PPNR = PPNRModel(net_interest_margin=0.027, rate_sensitivity=0.10, noninterest_income_ratio=0.018,
                         expense_ratio=0.022, expense_unemployment_sensitivity=0.0005)


@dataclass(frozen=True)
class CapitalAssumptions:
    """Bank-level inputs of the capital projection (the loan book is only part of the balance sheet).

    Field meanings and defaults are those of the settings of the same names (``pipelines/settings.py``,
    ``docs/capital.md``); dollar amounts of 0 mean "derive from the ratios and the loan tape".
    """

    approach: CapitalApproach = CapitalApproach.STANDARDIZED
    rwa_path: RWAPath = RWAPath.CONSTANT
    total_assets: float = 0.0
    loan_share: float = 0.40
    securities_share: float = 0.25
    securities_risk_weight: float = 0.15
    other_assets_risk_weight: float = 0.40
    starting_cet1_ratio: float = 0.134
    starting_cet1: float = 0.0
    starting_tier1_ratio: float = 0.148
    starting_tier1: float = 0.0
    ppnr: PPNRModel = DEFAULT_PPNR
    tax_rate: float = 0.21

    @classmethod
    def from_settings(cls, settings: StressSettings) -> CapitalAssumptions:
        return cls(
            approach=settings.capital_approach, rwa_path=settings.rwa_path, total_assets=settings.bank_total_assets,
            loan_share=settings.bank_loan_share, securities_share=settings.bank_securities_share,
            securities_risk_weight=settings.bank_securities_risk_weight,
            other_assets_risk_weight=settings.bank_other_assets_risk_weight,
            starting_cet1_ratio=settings.starting_cet1_ratio, starting_cet1=settings.starting_cet1,
            starting_tier1_ratio=settings.starting_tier1_ratio, starting_tier1=settings.starting_tier1,
            ppnr=PPNRModel(settings.ppnr_net_interest_margin, settings.ppnr_rate_sensitivity,
                           settings.ppnr_noninterest_income_ratio, settings.ppnr_expense_ratio,
                           settings.ppnr_expense_unemployment_sensitivity),
            tax_rate=settings.tax_rate,
        )

    def fingerprint(self) -> dict[str, Any]:
        """Plain values that fix the capital projection (part of the simulation id)."""
        return asdict(self)


@dataclass(frozen=True)
class SimulationConfig:
    """What fixes a run besides the data, the scenario and the model."""

    horizon: int = 9
    n_paths: int = 1000
    seed: int = 20260101
    capital: CapitalAssumptions = CapitalAssumptions()
    # How defaults are correlated over the horizon (STRESS_FACTOR_MODEL, models.portfolio_loss.FactorModel):
    # one latent variable per loan and one factor per path by default.
    factor_model: FactorModel = DEFAULT_FACTOR_MODEL
    # AR(1) persistence of the quarterly_ar1 factor across quarters (STRESS_FACTOR_PERSISTENCE; the default's
    # calibration is explained at models.portfolio_loss.DEFAULT_FACTOR_PERSISTENCE).
    factor_persistence: float = DEFAULT_FACTOR_PERSISTENCE


def plan_batches(n_loans: int, batch_size: int) -> list[dict[str, int]]:
    """Contiguous slices of the feature table, one per mapped task."""
    if n_loans <= 0:
        raise ValueError("no loans to simulate")
    starts = range(0, n_loans, batch_size)
    return [{"batch": i, "start": s, "stop": min(s + batch_size, n_loans)} for i, s in enumerate(starts)]


def book_arrays(features: pa.Table) -> BookArrays:
    """The projection's view of a feature table (see :mod:`pipelines.data.features`)."""
    def column(name: str, dtype: Any = np.float64) -> np.ndarray:
        return features.column(name).to_numpy(zero_copy_only=False).astype(dtype)

    segment_name = column("ProductSegment", object)
    reference_names = column("ReferenceIndex", object)
    reference = np.full(len(segment_name), -1, dtype=np.int8)
    for code, name in enumerate(REFERENCE_INDICES):
        reference[reference_names == name] = code
    segments = segment_codes(segment_name)
    collateral_index = np.full(len(segments), DEPRECIATING, dtype=np.int8)
    for segment, index in COLLATERAL_INDEX.items():
        collateral_index[segment_name == segment.value] = index
    return BookArrays(
        segment=segments, segment_name=segment_name, schedule=column("ScheduleCode", np.int8),
        balance=column("CurrentBalance"), limit=column("LoanAmount"), rate=column("InterestRate"),
        reference=reference, remaining_quarters=column("RemainingQuarters", np.int32),
        income=column("BorrowerIncome"), collateral=column("CollateralValue"),
        senior_liens=np.nan_to_num(column("SeniorLienBalance")), collateral_index=collateral_index,
        score=column("CreditScore"), age_quarters=column("LoanAgeQuarters"),
        in_default=in_default(column("DaysPastDue")),
    )


def macro_path(scenario: Scenario, history: pd.DataFrame) -> MacroPath:
    """What the projection needs of a scenario, with lags filled from history before its start."""
    joined = join_history(scenario.path, history)
    unemployment_avg = joined["unemployment_rate"].rolling(4, min_periods=1).mean()
    horizon = scenario.path.index
    relative = scenario.relative_to_jump_off()
    rate_changes = np.column_stack([relative[REFERENCE_INDEX_VARIABLE[name]].to_numpy() for name in REFERENCE_INDICES])
    return MacroPath(
        rate_change_points=rate_changes,
        unemployment_avg_4q=unemployment_avg.loc[horizon].to_numpy(),
        unemployment_avg_4q_change=unemployment_avg.diff(4).loc[horizon].to_numpy(),
        house_price_change_4q=joined["house_price_index"].pct_change(4, fill_method=None).loc[horizon].to_numpy() * 100,
        house_price_ratio=relative["house_price_index"].to_numpy(),
        cre_price_ratio=relative["cre_price_index"].to_numpy(),
    )


def correlation_class(segment_name: np.ndarray, annual_pd: np.ndarray) -> np.ndarray:
    """Class index into :data:`CLASS_RHO` from the Basel correlation of each loan at jump-off."""
    asset_class = asset_class_codes(segment_name)
    rho = asset_correlation(np.clip(annual_pd, 0.0003, 1.0), asset_class)
    classes = np.zeros(len(segment_name), dtype=np.int64)
    classes[asset_class == AssetClass.QUALIFYING_REVOLVING] = 1
    for offset, (levels, kind) in enumerate(((OTHER_RETAIL_LEVELS, AssetClass.OTHER_RETAIL),
                                              (CORPORATE_LEVELS, AssetClass.CORPORATE))):
        chosen = asset_class == kind
        nearest = np.abs(rho[chosen, None] - np.array(levels)[None, :]).argmin(axis=1)
        classes[chosen] = 2 + offset * len(OTHER_RETAIL_LEVELS) + nearest
    return classes


@dataclass
class BatchResult:
    """Additive partial results of one (scenario, batch), plus the per-loan table."""

    histogram: ExposureHistogram
    aggregates: dict[str, Any]
    loans: pa.Table
    # The same loans binned by (segment, correlation class), for the per-segment path losses the allocation
    # optimiser needs (segment_path_losses).
    segment_histogram: ExposureHistogram


def loan_keys(loan_id: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Random-stream key of each loan: the 64-bit FNV-1a hash of its LoanId's bytes (not its batch or row).

    A function of the id alone, so a loan keeps its key across processes, batchings and row orders;
    vectorised over the id's byte columns (a Python hash per loan would cost seconds per million).
    LoanIds are unique after validation; two of the book's largest names sharing a key (odds about
    2^-50) is refused by the engine.
    """
    ids = pa.chunked_array([loan_id]) if isinstance(loan_id, pa.Array) else loan_id
    ids = ids.cast(pa.large_string()).combine_chunks()  # UTF-8 bytes with int64 offsets
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int64)[ids.offset: ids.offset + len(ids) + 1]
    data = np.frombuffer(ids.buffers()[2], dtype=np.uint8) if len(ids) else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    keys = np.full(len(ids), FNV_OFFSET, dtype=np.uint64)
    for position in range(int(lengths.max(initial=0))):
        inside = position < lengths  # only a loan's own bytes
        octet = data[np.where(inside, starts + position, 0)].astype(np.uint64)
        keys = np.where(inside, (keys ^ octet) * FNV_PRIME, keys)
    return keys


def simulate_batch(features: pa.Table, scenario: Scenario, history: pd.DataFrame, pd_model: PDFunction,
                   config: SimulationConfig) -> BatchResult:
    """Project one batch of loans under one scenario."""
    book = book_arrays(features)
    projection = project_book(book, macro_path(scenario, history), pd_model)
    # A loan in default has PD 1 whatever the bank's score says (docs/default_definition.md).
    jump_off_pd = np.where(book.in_default, 1.0, features.column("DefaultRiskScore").to_numpy(zero_copy_only=False))
    classes, keys = correlation_class(book.segment_name, jump_off_pd), loan_keys(features.column("LoanId"))
    histogram = ExposureHistogram.from_loans(classes, CLASS_RHO, projection.pd, projection.loss_weight, loan_key=keys,
                                             square_unit=SQUARE_UNIT, factor_model=config.factor_model)
    segment_histogram = ExposureHistogram.from_loans(
        book.segment.astype(np.int64) * CLASS_RHO.size + classes, np.tile(CLASS_RHO, len(SEGMENT_NAMES)),
        projection.pd, projection.loss_weight, loan_key=keys, square_unit=SQUARE_UNIT, exact_names=0,
        factor_model=config.factor_model)
    expected_loss = projection.expected_loss

    def per_segment(values: np.ndarray) -> dict[str, list[float]]:
        n_segments = len(SEGMENT_NAMES)
        sums = np.stack([np.bincount(book.segment, weights=column, minlength=n_segments) for column in values.T],
                        axis=1)
        present = np.bincount(book.segment, minlength=len(SEGMENT_NAMES)) > 0
        return {segment: sums[code].tolist() for code, segment in enumerate(SEGMENT_NAMES) if present[code]}

    # Jump-off capital: undrawn revolving limits enter at their credit conversion factor; IRB uses the bank's own
    # 12-month PD (Basel III floors) and LGD at today's collateral values; the allowance is the next four quarters'
    # expected loss on the same exposure. A defaulted borrower's line is frozen: no undrawn commitment.
    undrawn = standardized.undrawn_commitments(book.balance, book.limit,
                                               (book.schedule == ScheduleCode.REVOLVING) & ~book.in_default)
    ccf_undrawn = standardized.credit_conversion_factors(book.segment_name) * undrawn
    standardized_rwa = standardized.credit_rwa(book.balance, undrawn, book.segment_name,
                                               features.column("DaysPastDue").to_numpy(zero_copy_only=False))
    jump_off_lgd = stressed_lgd(book.segment, book.balance, book.collateral, 1.0, book.senior_liens)
    asset_class = asset_class_codes(book.segment_name)
    irb_weight = risk_weight(jump_off_pd, jump_off_lgd, asset_class, pd_floor=basel3_pd_floors(asset_class))
    jump_off_el_4q = np.clip(jump_off_pd, 0.0, 1.0) * jump_off_lgd * (book.balance + ccf_undrawn)
    aggregates = {
        "loans": len(book),
        "expected_loss": per_segment(expected_loss),
        "rwa": per_segment(projection.rwa),
        "surviving_balance": per_segment(projection.surviving_balance),
        "jump_off_balance": per_segment(book.balance[:, None]),
        "undrawn_commitments": per_segment(undrawn[:, None]),
        "jump_off_el_4q": per_segment(jump_off_el_4q[:, None]),
        "standardized_rwa_drawn": per_segment(standardized_rwa.drawn[:, None]),
        "standardized_rwa_undrawn": per_segment(standardized_rwa.undrawn[:, None]),
        "irb_rwa_drawn": per_segment((irb_weight * book.balance)[:, None]),
        "irb_rwa_undrawn": per_segment((irb_weight * ccf_undrawn)[:, None]),
        "defaulted_loans": per_segment(book.in_default[:, None].astype(np.float64)),
        "defaulted_balance": per_segment((book.balance * book.in_default)[:, None]),
        "defaulted_loss": per_segment((expected_loss[:, 0] * book.in_default)[:, None]),
        "income_missing_loans": per_segment(income_missing(book.income)[:, None].astype(np.float64)),
    }
    loans = pa.table({
        "LoanId": features.column("LoanId"),
        "ProductSegment": features.column("ProductSegment"),
        "ProjectedDefaultRisk": projection.cumulative_pd,
        "ProjectedBalance": np.round(projection.final_balance, 2),
        "ExpectedLoss": expected_loss.sum(axis=1),
        "QuarterlyPD": pa.FixedSizeListArray.from_arrays(projection.pd.astype(np.float32).ravel(), scenario.horizon),
        # The contractual balance at each quarter's end if the loan survives (the projection's amortisation, not
        # net of defaults), to the cent; its last entry is ProjectedBalance. float64: float32 loses the cents of
        # a balance above about 170,000.
        "QuarterlyBalance": pa.FixedSizeListArray.from_arrays(np.round(projection.balance, 2).ravel(),
                                                              scenario.horizon),
    })
    return BatchResult(histogram, aggregates, loans, segment_histogram)


AGGREGATE_KEYS = ("expected_loss", "rwa", "surviving_balance", "jump_off_balance", "undrawn_commitments",
                  "jump_off_el_4q", "standardized_rwa_drawn", "standardized_rwa_undrawn", "irb_rwa_drawn",
                  "irb_rwa_undrawn", "defaulted_loans", "defaulted_balance", "defaulted_loss",
                  "income_missing_loans")


def add_aggregates(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum batch aggregates (per-segment lists add element-wise)."""
    total: dict[str, Any] = {"loans": sum(p["loans"] for p in parts)}
    for key in AGGREGATE_KEYS:
        merged: dict[str, np.ndarray] = {}
        for part in parts:
            for segment, values in part[key].items():
                merged[segment] = merged.get(segment, 0.0) + np.asarray(values)
        total[key] = {segment: merged[segment].tolist() for segment in SEGMENT_NAMES if segment in merged}
    return total


def segment_path_losses(segment_histograms: list[ExposureHistogram], scenario: Scenario,
                        config: SimulationConfig) -> dict[str, np.ndarray]:
    """Each segment's loss over the horizon on every Monte Carlo path (systematic part), from the batches.

    Why the systematic part: the allocation optimiser scales a segment's losses linearly with its
    exposure, which holds for the conditional expected loss given the path's factors (a sum over
    loans) but not for the idiosyncratic draw, whose relative spread shrinks as a segment grows.
    The factors are those of the scenario's Monte Carlo (same seed, scenario key and persistence), so
    path ``p`` of every segment is path ``p`` of the book, and the segments add up to the book's
    conditional expected loss path by path.
    """
    histogram = ExposureHistogram.sum(segment_histograms)
    n_classes = CLASS_RHO.size
    losses = {}
    for code, segment in enumerate(SEGMENT_NAMES):
        rows = slice(code * n_classes, (code + 1) * n_classes)
        part = replace(histogram, rho=histogram.rho[rows], weight=histogram.weight[rows],
                       weight_sq=histogram.weight_sq[rows])
        if part.weight.any():
            losses[segment] = simulate_losses(part, config.n_paths, config.seed, scenario.scenario_id,
                                              persistence=config.factor_persistence, idiosyncratic=False).sum(axis=1)
    return losses


def simulation_id(snapshot_id: str, scenario: Scenario, model_version: str, config: SimulationConfig) -> str:
    """Deterministic id: the same data, scenario, model and settings give the same id."""
    key = json.dumps([snapshot_id, scenario.fingerprint(), model_version, config.horizon, config.n_paths,
                      config.seed, config.capital.fingerprint(), str(config.factor_model), config.factor_persistence],
                     sort_keys=True)
    return "SIM-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def self_check(el_analytic: float, el_mc: float, mc_standard_error: float) -> dict[str, Any]:
    """Is the Monte Carlo expected loss the analytic one (sum of PD x LGD x EAD) within its error?

    Why: the engine keeps every loan's unconditional expected loss exactly (the histogram's split
    is PD-preserving and the gamma draw keeps the conditional mean), so the mean loss over paths
    is an unbiased estimate of the loan-by-loan sum, and ``z = (EL_mc - EL_analytic) / SE`` is
    approximately standard normal (paths are independent, SE is the standard error of the mean
    over paths). A bias in the factor draws, the binning or the idiosyncratic draw that moves the
    mean shows up as a large ``|z|``; a bias of ``b`` x EL is caught once ``b`` exceeds about
    ``4 SE / EL``. The error is systematic-factor noise, so it shrinks with paths, not loans: on
    the 20,000-loan synthetic book under the 2026 severely adverse scenario the losses have a
    coefficient of variation of 0.39, so SE is 1.2 % of EL at 1,000 paths and a bias above about
    5 % fails the run; smaller biases pass. Threshold ``|z| <= 4``: a failed check stops the run,
    so false alarms must be rare. Resampling 1,000-path means from 200,000 engine paths of that
    book gave ``|z| > 4`` in 1.0e-4 of 200,000 trials (the right skew of the losses makes the lower
    tail of ``z`` heavier than a normal's 6e-5), against 0.3 % for ``|z| > 3`` and 4.7 % for
    ``|z| > 2``. The check only sees the mean: tail measures can be
    wrong with a correct mean (see the ``simulate_vs_dense`` benchmark).
    """
    if mc_standard_error > 0.0:
        z = (el_mc - el_analytic) / mc_standard_error
    else:  # no spread over paths (or one path): only an exact match passes
        z = 0.0 if el_mc == el_analytic else float("inf")
    return {"el_analytic": el_analytic, "el_mc": el_mc, "mc_standard_error": mc_standard_error, "z": z,
            "max_abs_z": SELF_CHECK_MAX_Z, "passed": bool(abs(z) <= SELF_CHECK_MAX_Z)}


def reduce_scenario(histograms: list[ExposureHistogram], aggregates: list[dict[str, Any]], scenario: Scenario,
                    config: SimulationConfig) -> dict[str, Any]:
    """Monte Carlo, risk measures and capital for one scenario from its batches' partial results."""
    histogram = ExposureHistogram.sum(histograms)
    if histogram.factor_model is not config.factor_model:
        raise ValueError(f"the batches were binned for the {histogram.factor_model} factor model, the run asks for "
                         f"{config.factor_model}")
    totals = add_aggregates(aggregates)
    path_losses = simulate_losses(histogram, config.n_paths, config.seed, scenario.scenario_id,
                                  persistence=config.factor_persistence)
    cumulative = path_losses.sum(axis=1)
    summary = stats.summarise(cumulative, levels=tuple(sorted({*VAR_LEVELS, *ES_LEVELS})))
    el_by_quarter = np.sum([v for v in totals["expected_loss"].values()], axis=0)
    balance = {s: v[0] for s, v in totals["jump_off_balance"].items()}
    total_balance = sum(balance.values())
    relative = scenario.relative_to_jump_off()
    capital = capital_path(totals, el_by_quarter, relative["treasury_3m"].to_numpy(),
                           relative["unemployment_rate"].to_numpy(), config.capital)
    return {
        "scenario_id": scenario.scenario_id,
        "loans": totals["loans"],
        "exposure": total_balance,
        "expected_loss": float(el_by_quarter.sum()),
        "expected_loss_mc": summary.expected_loss,
        "expected_loss_mc_se": summary.standard_error,
        "loss_rate": float(el_by_quarter.sum() / total_balance),
        "var": {f"{level:.3f}": summary.value_at_risk[level] for level in VAR_LEVELS},
        "expected_shortfall": {f"{level:.3f}": summary.expected_shortfall[level] for level in ES_LEVELS},
        "loss_by_quarter": el_by_quarter.tolist(),
        "loss_by_segment": {s: float(np.sum(v)) for s, v in totals["expected_loss"].items()},
        "loss_rate_by_segment": {s: float(np.sum(v) / balance[s]) if balance[s] else 0.0
                                 for s, v in totals["expected_loss"].items()},
        "exposure_by_segment": balance,
        # Per segment, for the allocation optimiser: expected loss of every quarter, credit RWA and the
        # jump-off 12-month expected loss (the starting allowance) on the approach of the capital path.
        "expected_loss_by_segment_quarter": totals["expected_loss"],
        "credit_rwa_by_segment": segment_credit_rwa(totals, config.capital.approach),
        "jump_off_el_4q_by_segment": {s: v[0] for s, v in totals["jump_off_el_4q"].items()},
        "defaulted_at_jump_off": {"loans": round(_segment_sum(totals, "defaulted_loans")),
                                  "balance": _segment_sum(totals, "defaulted_balance"),
                                  "loss": _segment_sum(totals, "defaulted_loss")},
        # Loans scored with the stressed DSTI for want of an income (models.projection.MISSING_INCOME_DSTI).
        "data_warnings": {"income_missing_loans": round(_segment_sum(totals, "income_missing_loans"))},
        "loss_distribution": np.quantile(cumulative, np.linspace(0, 1, 201)).tolist(),
        "capital": capital,
        "self_check": self_check(float(el_by_quarter.sum()), summary.expected_loss, summary.standard_error),
    }


def segment_credit_rwa(totals: dict[str, Any], approach: CapitalApproach) -> dict[str, float]:
    """Jump-off credit RWA of each segment (drawn and undrawn) on the approach of the capital path (unscaled)."""
    prefix = "standardized" if approach is CapitalApproach.STANDARDIZED else "irb"
    return {s: v[0] + totals[f"{prefix}_rwa_undrawn"][s][0] for s, v in totals[f"{prefix}_rwa_drawn"].items()}


def _segment_sum(totals: dict[str, Any], key: str) -> float:
    return float(sum(values[0] for values in totals[key].values()))


def loan_book_rwa(totals: dict[str, Any], assumptions: CapitalAssumptions) -> np.ndarray:
    """Credit RWA of the loan tape (unscaled) at jump-off and every projected quarter (``Q + 1`` entries).

    ``constant`` (default): the jump-off RWA throughout, the Fed's constant balance sheet. ``projected``:
    segment balances are replaced like for like, but the drawn RWA density follows the surviving loans
    (IRB: stressed PD and LGD; standardized: each segment's jump-off density on its survivors, so only
    the mix moves), and the RWA of undrawn commitments is held at jump-off.
    """
    prefix = "standardized" if assumptions.approach is CapitalApproach.STANDARDIZED else "irb"
    drawn, undrawn = _segment_sum(totals, f"{prefix}_rwa_drawn"), _segment_sum(totals, f"{prefix}_rwa_undrawn")
    horizon = len(next(iter(totals["surviving_balance"].values())))
    if assumptions.rwa_path is RWAPath.CONSTANT:
        return np.full(horizon + 1, drawn + undrawn)
    surviving = np.sum(list(totals["surviving_balance"].values()), axis=0)
    if assumptions.approach is CapitalApproach.STANDARDIZED:
        surviving_rwa = np.sum([np.asarray(totals["surviving_balance"][s]) * v[0] / totals["jump_off_balance"][s][0]
                                for s, v in totals["standardized_rwa_drawn"].items()
                                if totals["jump_off_balance"][s][0] > 0], axis=0)
    else:
        surviving_rwa = np.sum(list(totals["rwa"].values()), axis=0)
    density = np.divide(surviving_rwa, surviving, out=np.zeros_like(surviving), where=surviving > 0)
    return np.concatenate([[drawn], density * _segment_sum(totals, "jump_off_balance")]) + undrawn


def capital_path(totals: dict[str, Any], el_by_quarter: np.ndarray, short_rate_change: np.ndarray,
                 unemployment_change: np.ndarray, assumptions: CapitalAssumptions) -> dict[str, Any]:
    """CET1 and Tier 1 leverage paths on the Fed's conventions (see ``models/capital.py``, ``docs/capital.md``).

    The loan tape is the bank's loan book, scaled to ``loan_share x total_assets`` when total assets
    are given; securities and other assets complete the balance sheet at fixed risk weights (12 CFR
    217.32) and, like the loans, are held constant (defaulted and maturing loans replaced like for
    like), so total assets are the leverage exposure throughout. Net charge-offs are the scenario's
    expected credit losses; provisions add the build of the allowance to the next four quarters'
    expected loss, starting from the jump-off 12-month expected loss. No capital actions (12 CFR 252.44).
    """
    tape_balance = _segment_sum(totals, "jump_off_balance")
    if assumptions.total_assets > 0:
        balance_sheet = BalanceSheet.from_shares(
            assumptions.total_assets, assumptions.loan_share * assumptions.total_assets,
            assumptions.securities_share, assumptions.securities_risk_weight, assumptions.other_assets_risk_weight)
    else:
        balance_sheet = BalanceSheet.from_shares(
            tape_balance / assumptions.loan_share, tape_balance, assumptions.securities_share,
            assumptions.securities_risk_weight, assumptions.other_assets_risk_weight)
    scale = balance_sheet.loans / tape_balance
    credit_rwa = scale * loan_book_rwa(totals, assumptions)
    rwa = credit_rwa + balance_sheet.non_loan_rwa
    start_cet1 = assumptions.starting_cet1 or assumptions.starting_cet1_ratio * rwa[0]
    start_tier1 = assumptions.starting_tier1 or assumptions.starting_tier1_ratio * rwa[0]
    net_charge_offs = scale * el_by_quarter
    allowance = allowance_path(net_charge_offs, scale * _segment_sum(totals, "jump_off_el_4q"))
    provision = provisions(net_charge_offs, allowance)
    ppnr = assumptions.ppnr.quarterly(balance_sheet, short_rate_change, unemployment_change)
    path = project_capital(start_cet1, start_tier1 - start_cet1, rwa, balance_sheet.total_assets, ppnr, provision,
                           assumptions.tax_rate)
    return {
        "approach": str(assumptions.approach), "rwa_path": str(assumptions.rwa_path),
        "total_assets": balance_sheet.total_assets, "loans": balance_sheet.loans,
        "securities": balance_sheet.securities, "other_assets": balance_sheet.other_assets, "loan_scale": scale,
        "undrawn_commitments": scale * _segment_sum(totals, "undrawn_commitments"),
        "start_credit_rwa": float(credit_rwa[0]), "start_rwa": float(rwa[0]),
        "start_cet1": float(start_cet1), "start_tier1": float(start_tier1),
        "rwa": rwa[1:].tolist(), "cet1": path.cet1[1:].tolist(), "tier1": path.tier1[1:].tolist(),
        "cet1_ratio": path.cet1_ratio.tolist(), "tier1_leverage_ratio": path.leverage_ratio.tolist(),
        "min_cet1_ratio": float(path.min_cet1_ratio), "min_quarter": int(path.min_cet1_quarter),
        "start_to_trough": float(path.start_to_trough),
        "min_tier1_leverage_ratio": float(path.min_leverage_ratio),
        "min_leverage_quarter": int(path.min_leverage_quarter),
        "ppnr": ppnr.tolist(), "net_charge_offs": net_charge_offs.tolist(), "allowance": allowance.tolist(),
        "provisions": provision.tolist(), "pre_tax_income": path.pre_tax_income.tolist(),
        "taxes": path.taxes.tolist(),
    }
