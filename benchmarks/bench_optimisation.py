"""``optimise_350x10k``: the return maximisation under a CVaR limit over 350 assets and 10,000 paths.

350 assets are 7 segments x 10 regions x 5 PD bands; the losses per unit are conditional Vasicek
losses under a national and a regional factor (seeded), the shape a stress run at that granularity
would hand the optimiser. Every constraint family is active: growth and run-off bounds, the budget,
a concentration limit, the CVaR 99 % limit at the current book's CVaR and the stressed CET1 minimum.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from benchmarks.common import Timer, benchmark
from models.optimisation import Assets, CapitalBase, Limits, evaluate, maximum_return
from models.segments import SEGMENT_NAMES, SEGMENT_ORDER
from models.standardized import RISK_WEIGHTS

N_REGIONS, N_BANDS, N_PATHS, QUARTERS, SEED = 10, 5, 10_000, 9, 20260101


def synthetic_assets(n_paths: int = N_PATHS, seed: int = SEED) -> Assets:
    """Seeded segment x region x PD band assets: a national factor, regional factors, Vasicek losses."""
    rng = np.random.default_rng(seed)
    segments = np.repeat(np.arange(len(SEGMENT_NAMES)), N_REGIONS * N_BANDS)
    regions = np.tile(np.repeat(np.arange(N_REGIONS), N_BANDS), len(SEGMENT_NAMES))
    bands = np.tile(np.arange(N_BANDS), len(SEGMENT_NAMES) * N_REGIONS)
    n = segments.size
    annual_pd = 0.004 * 1.9**bands * rng.uniform(0.8, 1.25, n)
    lgd = rng.uniform(0.2, 0.75, n)
    rho = rng.uniform(0.04, 0.16, n)
    national = rng.standard_normal((n_paths, 1))
    regional = np.sqrt(0.75) * national + np.sqrt(0.25) * rng.standard_normal((n_paths, N_REGIONS))
    horizon_pd = 1 - (1 - annual_pd) ** (QUARTERS / 4)
    conditional = ndtr((ndtri(horizon_pd) - np.sqrt(rho) * regional[:, regions]) / np.sqrt(1 - rho))
    losses = conditional * lgd
    expected = horizon_pd * lgd
    margin = 0.015 + 1.4 * annual_pd * lgd + rng.uniform(0.0, 0.01, n)
    density = np.array([RISK_WEIGHTS[segment] for segment in SEGMENT_ORDER])[segments]
    names = tuple(f"{SEGMENT_NAMES[s]}/region{r}/band{b}" for s, r, b in zip(segments, regions, bands, strict=True))
    return Assets(names=names, segments=tuple(SEGMENT_NAMES[s] for s in segments), path_losses=losses,
                  expected_loss=expected, net_interest_margin=margin, fee_rate=0.004, cost_rate=0.012,
                  rwa_density=density, current=rng.uniform(2e8, 2e9, n),
                  quarterly_stressed_loss=np.tile(1.6 * expected / QUARTERS, (QUARTERS, 1)),
                  start_allowance=annual_pd * lgd)


@benchmark
def optimise_350x10k() -> dict[str, float]:
    assets = synthetic_assets()
    budget = float(assets.current.sum())
    current = evaluate(assets, Limits(budget=budget), assets.current)
    other_rwa = 0.6 * float(assets.rwa_density @ assets.current)
    capital = CapitalBase(cet1_start=0.12 * (other_rwa + float(assets.rwa_density @ assets.current)),
                          other_rwa=other_rwa, other_income=np.linspace(0.0, 0.01 * budget, QUARTERS + 1),
                          minimum_ratio=0.045, buffer=0.025, tax_rate=0.21)
    limits = Limits(budget=budget, max_growth=0.3, max_runoff=0.3, concentration={"credit_card": 0.15},
                    cvar_level=0.99, cvar_limit=current.cvar, capital=capital)
    with Timer() as timer:
        result = maximum_return(assets, limits)
    gain = result.change()["expected_return"]
    if not gain >= 0 or result.recommended_metrics.cvar > current.cvar * (1 + 1e-6):
        raise AssertionError("the optimum must not earn less or breach the CVaR limit at the current book")
    return {"assets": assets.n_assets, "paths": N_PATHS, "wall_s": round(timer.seconds, 2),
            "cpu_s": round(timer.cpu_seconds, 2), "binding_constraints": len(result.binding),
            "return_gain_pct": round(100 * gain / current.expected_return, 2)}
