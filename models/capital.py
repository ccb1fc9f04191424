"""The CET1 capital and ratio path over the stress horizon.

Why: the outcome of a stress test is the lowest common-equity tier 1 ratio the bank reaches, and
the drop from the start to that trough (which sets the US stress capital buffer). This module turns
the projected income, losses and RWA into that path with deliberately plain accounting.

Each quarter ``q = 1..Q``::

    pre_tax_q = PPNR_q - credit_loss_q
    tax_q     = tax_rate * max(pre_tax_q, 0)
    CET1_q    = CET1_{q-1} + pre_tax_q - tax_q - dividends_q
    ratio_q   = CET1_q / RWA_q

Losses get no tax relief: a loss creates a deferred tax asset from a net operating loss, and such
DTAs are deducted from CET1 (Basel III CAP30, US 12 CFR 217.22), so the conservative simplification
is to let the pre-tax loss hit capital in full. There is no carry-forward against later profits.
Dividends are an amount per quarter (the bank's planned distributions), paid whatever the income.

Inputs may carry leading axes (e.g. paths x quarters), so a whole Monte Carlo distribution of
capital paths is computed at once; the quarter axis is the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class CapitalPath:
    """Capital and ratio at quarter 0 (the start) and every projected quarter, plus the trough.

    ``capital`` and ``ratio`` have ``Q + 1`` entries on their last axis, index 0 being the start.
    ``min_quarter`` is the index (1..Q) of the lowest projected ratio, so
    ``ratio[..., min_quarter] == min_ratio``; the earliest quarter wins a tie.
    """

    capital: NDArray[np.float64]
    ratio: NDArray[np.float64]
    min_ratio: NDArray[np.float64]
    min_quarter: NDArray[np.int64]

    @property
    def start_to_trough(self) -> NDArray[np.float64]:
        """Decline of the ratio from the start to its minimum (positive when capital is depleted)."""
        return self.ratio[..., 0] - self.min_ratio


def project_cet1(
    start_capital: float,
    start_rwa: float,
    ppnr: ArrayLike,
    credit_losses: ArrayLike,
    rwa: ArrayLike,
    tax_rate: float,
    dividends: ArrayLike = 0.0,
) -> CapitalPath:
    """CET1 capital and ratio path from per-quarter PPNR, credit losses, RWA and dividends."""
    if not 0.0 <= tax_rate < 1.0:
        raise ValueError("tax_rate must lie in [0, 1)")
    if start_rwa <= 0.0:
        raise ValueError("start_rwa must be positive")
    pre_tax = np.asarray(ppnr, dtype=np.float64) - np.asarray(credit_losses, dtype=np.float64)
    net_income = pre_tax - tax_rate * np.maximum(pre_tax, 0.0)
    retained = net_income - np.asarray(dividends, dtype=np.float64)
    rwa_path = np.asarray(rwa, dtype=np.float64)
    retained, rwa_path = np.broadcast_arrays(retained, rwa_path)
    if retained.ndim == 0 or retained.shape[-1] == 0:
        raise ValueError("need at least one projected quarter")
    if np.any(rwa_path <= 0.0):
        raise ValueError("RWA must be positive")

    lead_shape = retained.shape[:-1]
    capital = np.cumsum(np.concatenate([np.full((*lead_shape, 1), float(start_capital)), retained], axis=-1),
                        axis=-1)
    ratio = capital / np.concatenate([np.full((*lead_shape, 1), float(start_rwa)), rwa_path], axis=-1)
    min_quarter = 1 + np.argmin(ratio[..., 1:], axis=-1)
    min_ratio = np.take_along_axis(ratio, min_quarter[..., None], axis=-1)[..., 0]
    return CapitalPath(capital=capital, ratio=ratio, min_ratio=min_ratio, min_quarter=min_quarter)
