"""Known-answer tests of the one-quarter loan projection."""

from __future__ import annotations

import numpy as np
import pytest

from models.amortisation import (
    ScheduleCode,
    draw_down,
    level_payment,
    project_quarter,
    schedule_codes,
)
from pipelines.data.contract import REPAYMENT_SCHEDULES

PRINCIPAL = 100_000.0
ANNUAL_RATE = 0.06
TERM_QUARTERS = 8
# By hand: quarterly rate 1.5 %, P = 100000 * 0.015 / (1 - 1.015^-8).
HAND_PAYMENT = PRINCIPAL * 0.015 / (1.0 - 1.015**-8)


def run_schedule(code: ScheduleCode, rates: list[float]) -> list:
    balance = np.array([PRINCIPAL])
    flows = []
    for quarter, rate in enumerate(rates):
        step = project_quarter(balance, rate, TERM_QUARTERS - quarter, np.array([code]))
        flows.append(step)
        balance = step.balance
    return flows


def test_level_payment_matches_the_hand_formula() -> None:
    assert pytest.approx(13_358.40, abs=0.005) == HAND_PAYMENT
    assert float(level_payment(PRINCIPAL, 0.015, 8)) == pytest.approx(HAND_PAYMENT, rel=1e-13)


def test_level_payment_at_zero_rate_and_last_period() -> None:
    assert float(level_payment(1200.0, 0.0, 12)) == 100.0
    assert float(level_payment(1000.0, 0.02, 1)) == pytest.approx(1020.0, rel=1e-14)
    tiny = float(level_payment(1200.0, 1e-12, 12))
    assert tiny == pytest.approx(100.0, rel=1e-9)


def test_fixed_rate_annuity_schedule() -> None:
    flows = run_schedule(ScheduleCode.ANNUITY, [ANNUAL_RATE] * TERM_QUARTERS)
    payments = np.array([float(f.payment[0]) for f in flows])
    principal = np.array([float(f.principal[0]) for f in flows])
    np.testing.assert_allclose(payments, HAND_PAYMENT, rtol=1e-12)
    assert principal.sum() == pytest.approx(PRINCIPAL, rel=1e-12)
    assert float(flows[-1].balance[0]) == 0.0
    # First quarter by hand: interest 1,500, principal = payment - interest.
    assert float(flows[0].interest[0]) == pytest.approx(1500.0)
    assert float(flows[0].principal[0]) == pytest.approx(HAND_PAYMENT - 1500.0)
    assert float(flows[0].balance[0]) == pytest.approx(PRINCIPAL - (HAND_PAYMENT - 1500.0))


def test_repricing_re_amortises_and_shocks_the_payment() -> None:
    rates = [ANNUAL_RATE] * 3 + [0.10] * 5
    flows = run_schedule(ScheduleCode.ANNUITY, rates)
    balance_after_three = float(flows[2].balance[0])
    new_payment = balance_after_three * 0.025 / (1.0 - 1.025**-5)
    assert float(flows[3].payment[0]) == pytest.approx(new_payment, rel=1e-12)
    assert float(flows[3].payment[0]) > HAND_PAYMENT
    assert float(flows[-1].balance[0]) == 0.0


@pytest.mark.parametrize("code", [ScheduleCode.INTEREST_ONLY, ScheduleCode.BULLET, ScheduleCode.REVOLVING])
def test_non_amortising_schedules_pay_interest_then_everything_at_maturity(code: ScheduleCode) -> None:
    flows = run_schedule(code, [ANNUAL_RATE] * TERM_QUARTERS)
    for step in flows[:-1]:
        assert float(step.interest[0]) == pytest.approx(1500.0)
        assert float(step.principal[0]) == 0.0
        assert float(step.payment[0]) == pytest.approx(1500.0)
        assert float(step.balance[0]) == PRINCIPAL
    assert float(flows[-1].principal[0]) == PRINCIPAL
    assert float(flows[-1].payment[0]) == pytest.approx(PRINCIPAL + 1500.0)
    assert float(flows[-1].balance[0]) == 0.0


def test_loans_at_or_past_maturity_pay_off() -> None:
    codes = np.array(list(ScheduleCode))
    step = project_quarter(np.full(4, 500.0), 0.08, np.array([1, 0, 1, -2]), codes)
    np.testing.assert_array_equal(step.balance, 0.0)
    np.testing.assert_array_equal(step.principal, 500.0)
    np.testing.assert_allclose(step.payment, 510.0)


def test_identities_hold_for_a_mixed_vectorised_book() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    balance = rng.uniform(0.0, 1e6, n)
    rate = rng.uniform(0.0, 0.2, n)
    remaining = rng.integers(0, 120, n)
    codes = rng.integers(0, len(ScheduleCode), n)
    step = project_quarter(balance, rate, remaining, codes)
    np.testing.assert_allclose(step.payment, step.interest + step.principal)
    np.testing.assert_allclose(step.balance, balance - step.principal)
    assert np.all(step.balance >= -1e-6)
    assert np.all(step.principal >= 0.0)


def test_schedule_codes_follow_the_contract() -> None:
    np.testing.assert_array_equal(schedule_codes(list(REPAYMENT_SCHEDULES)), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="unknown"):
        schedule_codes(["balloon"])


def test_draw_down_only_moves_revolving_lines_towards_their_limit() -> None:
    balance = np.array([600.0, 600.0, 1200.0])
    limit = np.array([1000.0, 1000.0, 1000.0])
    codes = np.array([ScheduleCode.REVOLVING, ScheduleCode.ANNUITY, ScheduleCode.REVOLVING])
    np.testing.assert_allclose(draw_down(balance, limit, 0.5, codes), [800.0, 600.0, 1200.0])
