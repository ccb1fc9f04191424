"""Run-to-run attribution: why a scenario's loss and capital changed between two runs.

A stress result is fixed by four kinds of input: the **data** (the loan snapshot and its as-of
date), the **model** (the PD model version), the **scenario** (its macro path) and the
**parameters** (everything else: Monte Carlo paths and seed, factor persistence, capital and RWA
settings). A reviewer's first question about a new run is which of them moved the numbers.

Method: **sequential substitution** on a deterministic evaluator ``f`` of the inputs. Starting from
the previous run's inputs, the factors are switched to the current run's one at a time, in a fixed
order (:data:`FACTORS`: data, model, scenario, parameters); the bar of a factor is the change of
``f`` when it is switched, with the factors before it already current and those after it still
previous. The bars therefore add up to ``f(current) - f(previous)`` exactly, and interactions
between factors go to the later factor of the order (the order is part of the result's meaning:
data first, since a new book is the change a bank expects every quarter). A factor whose inputs
did not change gets a bar of exactly 0 and costs no evaluation.

The evaluator is the engine's own deterministic part, not the published Monte Carlo, so a final
**residual** closes the waterfall on the measured change: ``measured current - measured previous
- sum of bars``. It holds whatever the evaluator does not reproduce (Monte Carlo noise where the
measure is estimated by simulation with other draws, a code change between the runs). The
waterfall then sums to the measured change by construction, and a large residual is itself a
finding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FACTORS = ("data", "model", "scenario", "parameters")
RESIDUAL = "residual"

Evaluator = Callable[[Mapping[str, Any]], Mapping[str, float]]


@dataclass(frozen=True)
class Input:
    """One run's input for one factor: compared by ``key`` (what identifies it: an id, a hash, the settings as
    JSON), carrying ``value`` (what the evaluator needs to use it, e.g. where to load it from)."""

    key: str
    value: Any = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class Waterfall:
    """The change of one measure from the previous to the current run, bar by bar."""

    metric: str
    previous: float  # measured in the previous run
    current: float  # measured in the current run
    bars: dict[str, float]  # factor -> change, in the order of FACTORS, then RESIDUAL

    @property
    def change(self) -> float:
        return self.current - self.previous

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "previous": self.previous, "current": self.current, "change": self.change,
                "bars": dict(self.bars)}


def sequential_attribution(evaluate: Evaluator, previous: Mapping[str, Any], current: Mapping[str, Any],
                           measured_previous: Mapping[str, float], measured_current: Mapping[str, float],
                           order: Sequence[str] = FACTORS) -> dict[str, Waterfall]:
    """Waterfalls of every measure of ``measured_current`` (see the module docstring).

    ``previous`` and ``current`` map each factor of ``order`` to that run's input for it (any value
    that compares equal when the input did not change, e.g. an :class:`Input`);
    ``evaluate`` takes such a mapping and returns the measures. The evaluator is called once per
    distinct point of the substitution path, not at all when no factor changed.
    """
    unknown = sorted((set(previous) | set(current)) ^ set(order))
    if unknown:
        raise ValueError(f"factors {unknown} are not those of the attribution order {list(order)}")
    missing = sorted(set(measured_current) - set(measured_previous))
    if missing:
        raise ValueError(f"measures {missing} of the current run have no previous value")
    changed = [factor for factor in order if previous[factor] != current[factor]]
    point = dict(previous)
    bars: dict[str, dict[str, float]] = {metric: dict.fromkeys(order, 0.0) for metric in measured_current}
    if changed:
        value = evaluate(dict(point))
        for factor in changed:
            point[factor] = current[factor]
            after = evaluate(dict(point))
            for metric in bars:
                bars[metric][factor] = float(after[metric]) - float(value[metric])
            value = after
    waterfalls = {}
    for metric, by_factor in bars.items():
        change = float(measured_current[metric]) - float(measured_previous[metric])
        by_factor[RESIDUAL] = change - sum(by_factor[f] for f in order)
        waterfalls[metric] = Waterfall(metric, float(measured_previous[metric]), float(measured_current[metric]),
                                       by_factor)
    return waterfalls
