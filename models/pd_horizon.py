"""The one place where default probabilities change horizon (12 months <-> one quarter).

The ML PD model is trained on "default within the next 4 quarters" (a 12-month PD, the horizon
the default definition and the data support best), while the stress engine steps quarter by
quarter and needs the probability of default *within the quarter* given the loan is alive at its
start. Assuming a constant quarterly hazard ``q`` over the 12 months implied by the features
observed at ``t``::

    1 - p12 = (1 - q) ** 4      =>      q = 1 - (1 - p12) ** (1 / 4)

The assumption only spans one model evaluation: the projection re-evaluates the model every
quarter with that quarter's (stressed) features, so the hazard still moves with the scenario.
Every conversion in the platform goes through these two functions so that training, evaluation,
the MLflow pyfunc and the stress test cannot disagree on it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

QUARTERS_PER_YEAR = 4


def quarterly_pd(pd_horizon: npt.ArrayLike, horizon_quarters: int = QUARTERS_PER_YEAR) -> npt.NDArray[np.float64]:
    """Constant quarterly hazard equivalent to a PD over ``horizon_quarters`` (default 12 months)."""
    p = np.clip(np.asarray(pd_horizon, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):  # p = 1: log1p(-1) = -inf gives exactly 1
        return -np.expm1(np.log1p(-p) / horizon_quarters)


def horizon_pd(pd_quarterly: npt.ArrayLike, horizon_quarters: int = QUARTERS_PER_YEAR) -> npt.NDArray[np.float64]:
    """PD over ``horizon_quarters`` (default 12 months) of a constant quarterly hazard."""
    q = np.clip(np.asarray(pd_quarterly, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return -np.expm1(horizon_quarters * np.log1p(-q))
