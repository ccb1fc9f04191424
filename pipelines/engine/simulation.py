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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from models import loss_statistics as stats
from models.basel import (
    QUALIFYING_REVOLVING_CORRELATION,
    RESIDENTIAL_MORTGAGE_CORRELATION,
    AssetClass,
    asset_class_codes,
    asset_correlation,
    risk_weighted_assets,
)
from models.capital import project_cet1
from models.lgd import stressed_lgd
from models.portfolio_loss import DEFAULT_FACTOR_PERSISTENCE, ExposureHistogram, simulate_losses
from models.projection import (
    CRE_PRICES,
    DEPRECIATING,
    HOUSE_PRICES,
    BookArrays,
    MacroPath,
    PDFunction,
    project_book,
)
from models.segments import SEGMENT_NAMES, segment_codes
from pipelines.data.contract import REFERENCE_INDICES, Segment
from pipelines.data.macro import REFERENCE_INDEX_VARIABLE, join_history
from pipelines.engine.scenarios import Scenario
from pipelines.settings import StressSettings

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


@dataclass(frozen=True)
class CapitalAssumptions:
    """Bank-level inputs of the CET1 projection (the loan book is only part of the balance sheet)."""

    starting_cet1_ratio: float = 0.125
    credit_rwa_share: float = 0.85  # loan-book credit RWA / total RWA at jump-off
    annual_ppnr_rate: float = 0.015  # pre-provision net revenue per year, share of loan balances
    tax_rate: float = 0.21

    @classmethod
    def from_settings(cls, settings: StressSettings) -> CapitalAssumptions:
        return cls(settings.starting_cet1_ratio, settings.credit_rwa_share, settings.annual_ppnr_rate,
                   settings.tax_rate)


@dataclass(frozen=True)
class SimulationConfig:
    """What fixes a run besides the data, the scenario and the model."""

    horizon: int = 9
    n_paths: int = 1000
    seed: int = 20260101
    capital: CapitalAssumptions = CapitalAssumptions()
    # AR(1) persistence of the systematic factor across quarters (STRESS_FACTOR_PERSISTENCE; the default's
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
        income=column("BorrowerIncome"), collateral=column("CollateralValue"), collateral_index=collateral_index,
        score=column("CreditScore"), age_quarters=column("LoanAgeQuarters"),
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
    jump_off_pd = features.column("DefaultRiskScore").to_numpy(zero_copy_only=False)
    histogram = ExposureHistogram.from_loans(
        correlation_class(book.segment_name, jump_off_pd), CLASS_RHO,
        projection.pd, projection.loss_weight * projection.survival_start,
        loan_key=loan_keys(features.column("LoanId")), square_unit=SQUARE_UNIT)
    expected_loss = projection.expected_loss

    def per_segment(values: np.ndarray) -> dict[str, list[float]]:
        n_segments = len(SEGMENT_NAMES)
        sums = np.stack([np.bincount(book.segment, weights=column, minlength=n_segments) for column in values.T],
                        axis=1)
        present = np.bincount(book.segment, minlength=len(SEGMENT_NAMES)) > 0
        return {segment: sums[code].tolist() for code, segment in enumerate(SEGMENT_NAMES) if present[code]}

    # Jump-off capital: the bank's own 12-month PD and LGD at today's collateral values.
    jump_off_lgd = stressed_lgd(book.segment, book.balance, book.collateral, 1.0)
    jump_off_rwa = risk_weighted_assets(book.balance, jump_off_pd, jump_off_lgd, asset_class_codes(book.segment_name))
    aggregates = {
        "loans": len(book),
        "expected_loss": per_segment(expected_loss),
        "rwa": per_segment(projection.rwa),
        "surviving_balance": per_segment(projection.surviving_balance),
        "jump_off_balance": per_segment(book.balance[:, None]),
        "jump_off_rwa": per_segment(jump_off_rwa[:, None]),
    }
    loans = pa.table({
        "LoanId": features.column("LoanId"),
        "ProductSegment": features.column("ProductSegment"),
        "ProjectedDefaultRisk": projection.cumulative_pd,
        "ProjectedBalance": np.round(projection.final_balance, 2),
        "ExpectedLoss": expected_loss.sum(axis=1),
        "QuarterlyPD": pa.FixedSizeListArray.from_arrays(projection.pd.astype(np.float32).ravel(), scenario.horizon),
    })
    return BatchResult(histogram, aggregates, loans)


def add_aggregates(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum batch aggregates (per-segment lists add element-wise)."""
    total: dict[str, Any] = {"loans": sum(p["loans"] for p in parts)}
    for key in ("expected_loss", "rwa", "surviving_balance", "jump_off_balance", "jump_off_rwa"):
        merged: dict[str, np.ndarray] = {}
        for part in parts:
            for segment, values in part[key].items():
                merged[segment] = merged.get(segment, 0.0) + np.asarray(values)
        total[key] = {segment: merged[segment].tolist() for segment in SEGMENT_NAMES if segment in merged}
    return total


def simulation_id(snapshot_id: str, scenario: Scenario, model_version: str, config: SimulationConfig) -> str:
    """Deterministic id: the same data, scenario, model and settings give the same id."""
    key = json.dumps([snapshot_id, scenario.fingerprint(), model_version, config.horizon, config.n_paths,
                      config.seed, config.capital.__dict__, config.factor_persistence], sort_keys=True)
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
    totals = add_aggregates(aggregates)
    path_losses = simulate_losses(histogram, config.n_paths, config.seed, scenario.scenario_id,
                                  persistence=config.factor_persistence)
    cumulative = path_losses.sum(axis=1)
    summary = stats.summarise(cumulative, levels=tuple(sorted({*VAR_LEVELS, *ES_LEVELS})))
    el_by_quarter = np.sum([v for v in totals["expected_loss"].values()], axis=0)
    balance = {s: v[0] for s, v in totals["jump_off_balance"].items()}
    total_balance = sum(balance.values())
    capital = capital_path(totals, el_by_quarter, total_balance, config.capital)
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
        "loss_distribution": np.quantile(cumulative, np.linspace(0, 1, 201)).tolist(),
        "capital": capital,
        "self_check": self_check(float(el_by_quarter.sum()), summary.expected_loss, summary.standard_error),
    }


def capital_path(totals: dict[str, Any], el_by_quarter: np.ndarray, total_balance: float,
                 assumptions: CapitalAssumptions) -> dict[str, Any]:
    """CET1 path under a constant balance sheet, as in the Fed's stress tests.

    Maturing and defaulting loans are assumed replaced by new loans of the same risk, so credit RWA
    is the jump-off exposure times each quarter's stressed RWA density (RWA per unit of surviving
    balance); the rest of the bank's RWA is held flat. Start: the bank's own 12-month PDs
    (DefaultRiskScore) give today's credit RWA. PPNR accrues on the jump-off balances.
    """
    credit_rwa_start = sum(v[0] for v in totals["jump_off_rwa"].values())
    total_rwa_start = credit_rwa_start / assumptions.credit_rwa_share
    other_rwa = total_rwa_start - credit_rwa_start
    rwa = np.sum(list(totals["rwa"].values()), axis=0)
    surviving = np.sum(list(totals["surviving_balance"].values()), axis=0)
    density = np.divide(rwa, surviving, out=np.zeros_like(rwa), where=surviving > 0)
    rwa_path = density * total_balance + other_rwa
    ppnr = np.full(el_by_quarter.size, assumptions.annual_ppnr_rate * total_balance / 4)
    path = project_cet1(assumptions.starting_cet1_ratio * total_rwa_start, total_rwa_start, ppnr, el_by_quarter,
                        rwa_path, assumptions.tax_rate)
    return {
        "start_rwa": total_rwa_start, "start_cet1": float(path.capital[0]),
        "rwa": rwa_path.tolist(), "cet1": path.capital[1:].tolist(), "cet1_ratio": path.ratio.tolist(),
        "min_cet1_ratio": float(path.min_ratio), "min_quarter": int(path.min_quarter),
        "ppnr_per_quarter": float(ppnr[0]),
    }
