"""The bank's balance sheet, income and capital path over the stress horizon, on the Fed's conventions.

Why: the outcome of a stress test is the lowest CET1 and Tier 1 leverage ratio the bank reaches,
and the drop from the start to that trough (which sets the US stress capital buffer, 12 CFR
225.8). The loan book is only part of a bank, so the ratios need a balance sheet around it
(:class:`BalanceSheet`), an income model (:class:`PPNRModel`), provisions that build the allowance
(:func:`allowance_path`), and plain accounting (:func:`project_capital`). Every convention is cited
in ``docs/capital.md``.

Each quarter ``q = 1..Q``::

    provisions_q = NCO_q + (ACL_q - ACL_{q-1})
    pre_tax_q    = PPNR_q - provisions_q
    tax_q        = tax_rate * pre_tax_q           (negative: a tax benefit on a loss)
    CET1_q       = CET1_{q-1} + pre_tax_q - tax_q (no dividends or buybacks, 12 CFR 252.44)
    Tier1_q      = CET1_q + AT1                   (additional Tier 1 held at its jump-off amount)
    ratio_q      = CET1_q / RWA_q,   leverage_q = Tier1_q / leverage exposure_q

The Fed applies a flat 21 % rate to pre-tax income, a loss included, so a loss is relieved at the
same rate; the deduction of deferred tax assets above the 12 CFR 217.22(d) thresholds is not
modelled. Minimums run over the jump-off and every projected quarter.

Inputs may carry leading axes (e.g. paths x quarters), so a distribution of capital paths is
computed at once; the quarter axis is the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

QUARTERS_PER_YEAR = 4
ALLOWANCE_WINDOW_QUARTERS = 4
PERCENT = 100.0


@dataclass(frozen=True)
class BalanceSheet:
    """The bank at jump-off in dollars: loans (the loan book), securities and every other asset.

    Held constant over the horizon (the Fed's balance-sheet assumption: maturing and defaulting
    assets are replaced by like assets), so total assets are also the Tier 1 leverage exposure,
    whose denominator is average total consolidated assets (12 CFR 217.10(b)(4)).
    """

    loans: float
    securities: float
    other_assets: float
    securities_risk_weight: float
    other_assets_risk_weight: float

    def __post_init__(self) -> None:
        if self.loans <= 0 or self.securities < 0 or self.other_assets < 0:
            raise ValueError("loans must be positive, securities and other assets not negative")

    @classmethod
    def from_shares(cls, total_assets: float, loans: float, securities_share: float,
                    securities_risk_weight: float, other_assets_risk_weight: float) -> BalanceSheet:
        """A balance sheet from its total, the loan book in dollars and the securities' share of the total."""
        securities = securities_share * total_assets
        return cls(loans, securities, total_assets - loans - securities, securities_risk_weight,
                   other_assets_risk_weight)

    @property
    def total_assets(self) -> float:
        return self.loans + self.securities + self.other_assets

    @property
    def earning_assets(self) -> float:
        """Loans and securities: what net interest income accrues on."""
        return self.loans + self.securities

    @property
    def non_loan_rwa(self) -> float:
        """RWA of the securities and other assets (fixed weights, 12 CFR 217.32)."""
        return self.securities * self.securities_risk_weight + self.other_assets * self.other_assets_risk_weight


@dataclass(frozen=True)
class PPNRModel:
    """Pre-provision net revenue that responds simply to the scenario (annual rates, fractions).

    Per quarter::

        NII_q     = earning assets x (NIM + rate_sensitivity x dr_q) / 4
        fees_q    = total assets x noninterest_income_ratio / 4
        expense_q = total assets x (expense_ratio + expense_unemployment_sensitivity x max(du_q, 0)) / 4

    (``expense_unemployment_sensitivity`` is a fraction of total assets per point of unemployment.)
        PPNR_q    = NII_q + fees_q - expense_q

    ``dr_q`` is the change of the 3-month Treasury yield from jump-off and ``du_q`` that of the
    unemployment rate, in points (a cut of 100 bp with sensitivity 0.1 lowers the margin by 10 bp:
    large US banks are asset sensitive). Expenses rise with unemployment to stand for the
    operational-risk losses and collection costs the Fed's PPNR models add under stress.
    """

    net_interest_margin: float
    rate_sensitivity: float
    noninterest_income_ratio: float
    expense_ratio: float
    expense_unemployment_sensitivity: float

    def quarterly(self, balance_sheet: BalanceSheet, short_rate_change: ArrayLike,
                  unemployment_change: ArrayLike) -> NDArray[np.float64]:
        """PPNR of each quarter from the scenario's changes from jump-off (points)."""
        rate_move = np.asarray(short_rate_change, dtype=np.float64) / PERCENT
        unemployment_rise = np.maximum(np.asarray(unemployment_change, dtype=np.float64), 0.0)
        margin = self.net_interest_margin + self.rate_sensitivity * rate_move
        expense = self.expense_ratio + self.expense_unemployment_sensitivity * unemployment_rise
        annual = (balance_sheet.earning_assets * margin + balance_sheet.total_assets
                  * (self.noninterest_income_ratio - expense))
        return annual / QUARTERS_PER_YEAR


def allowance_path(expected_loss: ArrayLike, start_allowance: float,
                   window: int = ALLOWANCE_WINDOW_QUARTERS) -> NDArray[np.float64]:
    """Allowance for credit losses at jump-off and the end of every quarter (``Q + 1`` entries).

    Why: provisions are net charge-offs plus the reserve build, and the reserve the Fed requires at
    each quarter end covers the losses expected over the following four quarters (CECL-like, on the
    scenario's own path). Past the horizon, the last projected quarter's loss is repeated, since
    the scenario says nothing further. ``start_allowance`` is the jump-off expected loss over the
    next four quarters (the bank's own 12-month PDs), the same in every scenario.
    """
    losses = np.asarray(expected_loss, dtype=np.float64)
    if losses.ndim == 0 or losses.shape[-1] == 0:
        raise ValueError("need at least one projected quarter")
    extended = np.concatenate([losses, np.repeat(losses[..., -1:], window, axis=-1)], axis=-1)
    rolling = np.cumsum(np.concatenate([np.zeros((*losses.shape[:-1], 1)), extended], axis=-1), axis=-1)
    quarters = np.arange(1, losses.shape[-1] + 1)
    targets = rolling[..., quarters + window] - rolling[..., quarters]
    return np.concatenate([np.full((*losses.shape[:-1], 1), float(start_allowance)), targets], axis=-1)


def provisions(net_charge_offs: ArrayLike, allowance: ArrayLike) -> NDArray[np.float64]:
    """Provisions of each quarter: net charge-offs plus the change of the allowance over the quarter."""
    return np.asarray(net_charge_offs, dtype=np.float64) + np.diff(np.asarray(allowance, dtype=np.float64), axis=-1)


@dataclass(frozen=True)
class CapitalPath:
    """Capital and ratios at jump-off (index 0) and every projected quarter (``Q + 1`` entries).

    ``min_cet1_quarter`` and ``min_leverage_quarter`` index the lowest ratio over 0..Q (0 is the
    jump-off); the earliest quarter wins a tie. ``pre_tax_income`` and ``taxes`` have ``Q`` entries.
    """

    cet1: NDArray[np.float64]
    tier1: NDArray[np.float64]
    cet1_ratio: NDArray[np.float64]
    leverage_ratio: NDArray[np.float64]
    pre_tax_income: NDArray[np.float64]
    taxes: NDArray[np.float64]
    min_cet1_ratio: NDArray[np.float64]
    min_cet1_quarter: NDArray[np.int64]
    min_leverage_ratio: NDArray[np.float64]
    min_leverage_quarter: NDArray[np.int64]

    @property
    def start_to_trough(self) -> NDArray[np.float64]:
        """Decline of the CET1 ratio from jump-off to its minimum (the SCB's stress loss, >= 0)."""
        return self.cet1_ratio[..., 0] - self.min_cet1_ratio


def _minimum(ratio: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    quarter = np.argmin(ratio, axis=-1)
    return np.take_along_axis(ratio, quarter[..., None], axis=-1)[..., 0], quarter


def project_capital(start_cet1: float, additional_tier1: float, rwa: ArrayLike, leverage_exposure: ArrayLike,
                    ppnr: ArrayLike, provision: ArrayLike, tax_rate: float) -> CapitalPath:
    """CET1, Tier 1 and their ratios from PPNR and provisions (``Q``) and RWA and leverage exposure (``Q + 1``)."""
    if not 0.0 <= tax_rate < 1.0:
        raise ValueError("tax_rate must lie in [0, 1)")
    if additional_tier1 < 0.0:
        raise ValueError("Tier 1 capital cannot be below CET1")
    pre_tax = np.asarray(ppnr, dtype=np.float64) - np.asarray(provision, dtype=np.float64)
    if pre_tax.ndim == 0 or pre_tax.shape[-1] == 0:
        raise ValueError("need at least one projected quarter")
    taxes = tax_rate * pre_tax
    lead_shape = pre_tax.shape[:-1]
    cet1 = np.cumsum(np.concatenate([np.full((*lead_shape, 1), float(start_cet1)), pre_tax - taxes], axis=-1),
                     axis=-1)
    rwa_path, exposure = np.asarray(rwa, dtype=np.float64), np.asarray(leverage_exposure, dtype=np.float64)
    rwa_path, exposure = (np.broadcast_to(a, cet1.shape) for a in (rwa_path, exposure))
    if np.any(rwa_path <= 0.0) or np.any(exposure <= 0.0):
        raise ValueError("RWA and leverage exposure must be positive")
    tier1 = cet1 + additional_tier1
    cet1_ratio, leverage_ratio = cet1 / rwa_path, tier1 / exposure
    min_cet1, min_cet1_quarter = _minimum(cet1_ratio)
    min_leverage, min_leverage_quarter = _minimum(leverage_ratio)
    return CapitalPath(cet1, tier1, cet1_ratio, leverage_ratio, pre_tax, taxes, min_cet1, min_cet1_quarter,
                       min_leverage, min_leverage_quarter)
