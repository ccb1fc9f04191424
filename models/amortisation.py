"""Vectorised one-quarter-at-a-time projection of loan balances and cash flows.

Why one quarter at a time: a stress scenario changes rates every quarter, and a variable-rate loan
reprices to the new rate. Projecting a single step, with the rate for that step as an input, lets the
caller feed each quarter's repriced rates and see the payment shock of annuity loans, which a
precomputed schedule would miss.

Conventions: rates are annual decimal fractions compounded quarterly, so the quarterly rate is
``annual_rate / 4``. ``remaining_quarters`` counts the payments left *including* the one of this
quarter, so a loan with ``remaining_quarters <= 1`` matures now: it repays its whole balance and its
new balance is 0, whatever its schedule.

Schedules (integer codes, ``ScheduleCode``, in the order of
:data:`pipelines.data.contract.REPAYMENT_SCHEDULES`):

* ``annuity``: a level payment re-amortised each quarter over the remaining term at the current
  rate (``level_payment``), so a rate rise raises the payment;
* ``interest_only`` and ``bullet``: interest every quarter, all principal at maturity (a bullet loan
  here pays periodic coupons; only its principal is "bullet");
* ``revolving``: interest every quarter, the drawn balance stays drawn; :func:`draw_down` is the
  hook for stressed borrowers drawing on their undrawn limit.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

QUARTERS_PER_YEAR = 4


class ScheduleCode(IntEnum):
    """Array codes of the repayment schedules, in the order of the loan contract's values (a test checks it)."""

    ANNUITY = 0
    INTEREST_ONLY = 1
    BULLET = 2
    REVOLVING = 3



class QuarterFlows(NamedTuple):
    """Cash flows of one quarter; every field has the broadcast shape of the inputs."""

    interest: NDArray[np.float64]
    principal: NDArray[np.float64]
    payment: NDArray[np.float64]
    balance: NDArray[np.float64]
    # The regular instalment without a final balloon: the level payment of an annuity, the interest of
    # interest-only, bullet and revolving loans. What a borrower's budget carries quarter after quarter,
    # so what debt-service-to-income measures; the principal repaid at maturity is a refinancing event.
    scheduled_payment: NDArray[np.float64]


def schedule_codes(schedules: ArrayLike) -> NDArray[np.int8]:
    """``ScheduleCode`` values for an array of schedule names from the loan tape."""
    names = np.asarray(schedules)
    codes = np.full(names.shape, -1, dtype=np.int8)
    for code in ScheduleCode:
        codes[names == code.name.lower()] = code
    if np.any(codes < 0):
        unknown = sorted(set(np.unique(names[codes < 0]).tolist()))
        raise ValueError(f"unknown repayment schedules: {unknown}")
    return codes


def level_payment(
    principal: ArrayLike, periodic_rate: ArrayLike, n_periods: ArrayLike
) -> NDArray[np.float64]:
    """The level (annuity) payment that repays ``principal`` in ``n_periods`` at ``periodic_rate``.

    ``P * r / (1 - (1 + r)^-n)``, and ``P / n`` at ``r = 0``. The discount factor is computed as
    ``exp(-n log1p(r))`` so that tiny rates do not lose precision. ``n <= 1`` gives ``P * (1 + r)``,
    the final payment of principal plus interest.
    """
    p = np.asarray(principal, dtype=np.float64)
    r = np.asarray(periodic_rate, dtype=np.float64)
    n = np.maximum(np.asarray(n_periods, dtype=np.float64), 1.0)
    annuity_factor = -np.expm1(-n * np.log1p(r))  # 1 - (1 + r)^-n
    with np.errstate(divide="ignore", invalid="ignore"):
        payment = np.where(r == 0.0, p / n, p * r / annuity_factor)
    return np.asarray(payment, dtype=np.float64)


def project_quarter(
    balance: ArrayLike,
    annual_rate: ArrayLike,
    remaining_quarters: ArrayLike,
    schedule: ArrayLike,
) -> QuarterFlows:
    """Interest, scheduled principal, payment and new balance of every loan for one quarter.

    ``annual_rate`` is this quarter's contractual rate (already repriced for variable-rate loans).
    Interest accrues on the opening balance; ``payment = interest + principal`` and
    ``new balance = balance - principal`` hold for every loan. ``scheduled_payment`` is ``payment``
    without the balloon of a non-amortising loan's last quarter.
    """
    opening, quarterly_rate, remaining, codes = np.broadcast_arrays(
        np.asarray(balance, dtype=np.float64),
        np.asarray(annual_rate, dtype=np.float64) / QUARTERS_PER_YEAR,
        np.asarray(remaining_quarters),
        np.asarray(schedule),
    )
    interest = opening * quarterly_rate
    annuity = codes == ScheduleCode.ANNUITY
    level = level_payment(opening, quarterly_rate, remaining)
    principal = np.where(remaining <= 1, opening, np.where(annuity, level - interest, 0.0))
    return QuarterFlows(interest=interest, principal=principal, payment=interest + principal,
                        balance=opening - principal, scheduled_payment=np.where(annuity, level, interest))


def draw_down(
    balance: ArrayLike, limit: ArrayLike, draw_rate: ArrayLike, schedule: ArrayLike
) -> NDArray[np.float64]:
    """Balances after revolving borrowers draw ``draw_rate`` of their undrawn limit.

    Why: borrowers heading for default draw on their lines first, so exposure at default exceeds the
    current balance; this is the credit-conversion-factor hook. Call it before
    :func:`project_quarter` so the drawn amount accrues interest in the quarter. Non-revolving loans
    and lines already at or over their limit are unchanged.
    """
    drawn = np.asarray(balance, dtype=np.float64)
    undrawn = np.maximum(np.asarray(limit, dtype=np.float64) - drawn, 0.0)
    rate = np.clip(np.asarray(draw_rate, dtype=np.float64), 0.0, 1.0)
    return np.where(np.asarray(schedule) == ScheduleCode.REVOLVING, drawn + rate * undrawn, drawn)
