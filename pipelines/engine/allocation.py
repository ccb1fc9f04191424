"""The allocation recommendation of a stress run: every strategy, the recommended one, the frontier.

Why apart from the task: the task only reads the run's results and writes this document; which
strategies run and how an infeasible appetite is reported are decided here, once, for the DAG,
the report and the demo alike. An infeasible strategy does not fail the run: its entry says which
constraints conflict, and the report shows it.
"""

from __future__ import annotations

from typing import Any

from models.optimisation import (
    InfeasibleAllocation,
    Strategy,
    UnboundedAllocation,
    efficient_frontier,
    optimise,
)
from pipelines.engine.optimisation_inputs import LendingAppetite, OptimisationInputs


def _strategy(strategy: Strategy, inputs: OptimisationInputs) -> dict[str, Any]:
    options = {"target_return": inputs.target_return} if strategy is Strategy.MIN_CVAR else {}
    try:
        return {"status": "optimal", **optimise(strategy, inputs.assets, inputs.limits, **options).to_dict()}
    except InfeasibleAllocation as error:
        return {"status": "infeasible", "strategy": str(strategy), "conflicting": list(error.constraints),
                "message": str(error)}
    except UnboundedAllocation as error:
        return {"status": "unbounded", "strategy": str(strategy), "conflicting": [], "message": str(error)}


def recommend(inputs: OptimisationInputs, appetite: LendingAppetite) -> dict[str, Any]:
    """Every strategy's allocation (the appetite's first, as the recommendation) and the efficient frontier."""
    strategies = {str(s): _strategy(s, inputs) for s in Strategy}
    try:
        frontier = [{"cvar": p.cvar, "expected_return": p.expected_return}
                    for p in efficient_frontier(inputs.assets, inputs.limits, appetite.frontier_points)]
    except InfeasibleAllocation as error:
        frontier = []
        strategies["frontier"] = {"status": "infeasible", "conflicting": list(error.constraints)}
    limits = inputs.limits
    return {
        "scenario_id": inputs.scenario_id,
        "recommended_strategy": str(appetite.strategy),
        "recommendation": strategies[str(appetite.strategy)],
        "strategies": strategies,
        "frontier": frontier,
        "limits": {"budget": limits.budget, "cvar_level": limits.cvar_level, "cvar_limit": limits.cvar_limit,
                   "economic_capital_level": limits.economic_capital_level,
                   "required_cet1_ratio": limits.capital.required_ratio if limits.capital else None,
                   "concentration": limits.concentration},
    }
