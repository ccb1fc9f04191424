"""The allocation optimiser's inputs from a stress run: per-segment assets, the capital base and the appetite.

Why here: the optimiser (:mod:`models.optimisation`) is pure and takes per-unit arrays; a stress
run's results hold dollar sums per segment on the scale of the loan tape, the bank's capital path on
the scale of its balance sheet, and the per-segment Monte Carlo path losses the reduce step keeps
(``segment_path_losses.npz``). This module converts one into the other and reads the lending
appetite (``risk_appetite/lending.yaml``), so the current allocation reproduces the engine's own
CET1 path (a test holds the two together).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models.capital import QUARTERS_PER_YEAR
from models.optimisation import Assets, CapitalBase, Limits, Strategy, evaluate
from models.segments import SEGMENT_NAMES


class AppetiteError(ValueError):
    """The lending appetite file is malformed (the message names the file and the field)."""


SEGMENT_FIELDS = ("net_interest_margin", "fee_rate", "cost_rate", "max_growth", "max_runoff", "max_share")


@dataclass(frozen=True)
class LendingAppetite:
    """The lending appetite: strategy, risk limits relative to the current book, and per-segment terms.

    Field meanings and defaults are documented in ``risk_appetite/lending.yaml`` and
    ``docs/optimisation.md``; ``segments`` maps a segment to its :data:`SEGMENT_FIELDS`.
    """

    strategy: Strategy
    stress_scenario_suffix: str
    cvar_level: float
    cvar_limit_vs_current: float
    economic_capital_level: float
    budget_vs_current: float
    min_budget_use: float
    target_return_vs_current: float
    frontier_points: int
    segments: dict[str, dict[str, float]]


def load_appetite(path: Path) -> LendingAppetite:
    """Read and validate an appetite file; every problem is reported with the file and field."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise AppetiteError(f"{path}: cannot read the lending appetite: {error}") from None
    if not isinstance(document, dict):
        raise AppetiteError(f"{path}: expected a mapping of appetite fields")
    scalars = {"stress_scenario_suffix": str, "cvar_level": float, "cvar_limit_vs_current": float,
               "economic_capital_level": float, "budget_vs_current": float, "min_budget_use": float,
               "target_return_vs_current": float, "frontier_points": int}
    values: dict[str, Any] = {}
    for name, kind in scalars.items():
        if name not in document:
            raise AppetiteError(f"{path}: missing field {name!r}")
        try:
            values[name] = kind(document[name])
        except (TypeError, ValueError):
            raise AppetiteError(f"{path}: {name} must be a {kind.__name__}, got {document[name]!r}") from None
    try:
        strategy = Strategy(document.get("strategy"))
    except ValueError:
        raise AppetiteError(f"{path}: strategy must be one of {[s.value for s in Strategy]}") from None
    segments = document.get("segments")
    if not isinstance(segments, dict) or not segments:
        raise AppetiteError(f"{path}: 'segments' must map segments to their terms")
    terms: dict[str, dict[str, float]] = {}
    for segment, entry in segments.items():
        if segment not in SEGMENT_NAMES:
            raise AppetiteError(f"{path}: unknown segment {segment!r}; known: {list(SEGMENT_NAMES)}")
        missing = [f for f in SEGMENT_FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise AppetiteError(f"{path}: segment {segment} lacks {missing}")
        try:
            terms[segment] = {f: float(entry[f]) for f in SEGMENT_FIELDS}
        except (TypeError, ValueError):
            raise AppetiteError(f"{path}: segment {segment}: every term must be a number") from None
    return LendingAppetite(strategy=strategy, segments=terms, **values)


@dataclass(frozen=True)
class OptimisationInputs:
    """What a strategy needs, and the current book's measures under the same limits."""

    scenario_id: str
    assets: Assets
    limits: Limits
    target_return: float


def build_inputs(stress: dict[str, Any], segment_losses: dict[str, np.ndarray], appetite: LendingAppetite,
                 minimum_ratio: float, buffer: float, tax_rate: float,
                 baseline: dict[str, Any] | None = None) -> OptimisationInputs:
    """Assets (one per segment of the book), limits and the capital base from one scenario's results.

    ``stress`` is the stress scenario's ``simulation_result.json`` and ``segment_losses`` its
    per-segment path losses (tape currency); ``baseline``, when the run has one, prices the expected
    loss of the return. Dollar amounts are put on the bank's scale (``loan_scale`` of the capital
    path); per-unit rates are scale-free. The rest of the bank's income is the engine's PPNR less the
    loans' own pre-provision revenue at the appetite's margins, so that ``x = current`` gives the
    engine's CET1 path exactly (constant RWA path).
    """
    metrics = stress["metrics"]
    capital = metrics["capital"]
    balance = metrics["exposure_by_segment"]
    names = [s for s in SEGMENT_NAMES if balance.get(s, 0.0) > 0 and s in segment_losses]
    unpriced = [s for s in names if s not in appetite.segments]
    if unpriced:
        raise AppetiteError(f"the lending appetite has no terms for segments {unpriced} of the book")
    tape = np.array([balance[s] for s in names])
    terms = {f: np.array([appetite.segments[s][f] for s in names]) for f in SEGMENT_FIELDS}
    quarterly = np.array([metrics["expected_loss_by_segment_quarter"][s] for s in names]).T / tape
    if baseline is None:
        expected_loss = quarterly.sum(axis=0)
    else:
        base = baseline["metrics"]
        expected_loss = np.array([base["loss_rate_by_segment"].get(s, 0.0) for s in names])
    scale = float(capital["loan_scale"])
    assets = Assets(
        names=tuple(names), segments=tuple(names),
        path_losses=np.column_stack([segment_losses[s] for s in names]) / tape,
        expected_loss=expected_loss, net_interest_margin=terms["net_interest_margin"], fee_rate=terms["fee_rate"],
        cost_rate=terms["cost_rate"], rwa_density=np.array([metrics["credit_rwa_by_segment"][s] for s in names]) / tape,
        current=scale * tape, quarterly_stressed_loss=quarterly,
        start_allowance=np.array([metrics["jump_off_el_4q_by_segment"][s] for s in names]) / tape)
    quarters = np.arange(assets.n_quarters + 1)
    loans_revenue = float(assets.pre_provision_rate @ assets.current) / QUARTERS_PER_YEAR * quarters
    other_income = (1.0 - tax_rate) * (np.concatenate([[0.0], np.cumsum(capital["ppnr"])]) - loans_revenue)
    capital_base = CapitalBase(cet1_start=float(capital["start_cet1"]),
                               other_rwa=float(capital["start_rwa"] - capital["start_credit_rwa"]),
                               other_income=other_income, minimum_ratio=minimum_ratio, buffer=buffer,
                               tax_rate=tax_rate)
    budget = appetite.budget_vs_current * float(assets.current.sum())
    free = Limits(budget=budget, cvar_level=appetite.cvar_level,
                  economic_capital_level=appetite.economic_capital_level)
    current = evaluate(assets, free, assets.current)
    limits = Limits(budget=budget, max_growth=terms["max_growth"], max_runoff=terms["max_runoff"],
                    min_budget_use=appetite.min_budget_use,
                    concentration={s: appetite.segments[s]["max_share"] for s in names},
                    cvar_level=appetite.cvar_level, cvar_limit=appetite.cvar_limit_vs_current * current.cvar,
                    economic_capital_level=appetite.economic_capital_level, capital=capital_base)
    return OptimisationInputs(metrics["scenario_id"], assets, limits,
                              appetite.target_return_vs_current * current.expected_return)
