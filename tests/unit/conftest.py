"""Hand-made stress results for the compliance, metrics and report tests (no simulation needed)."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.engine.simulation import self_check

QUARTERS = [f"{2026 + q // 4}Q{q % 4 + 1}" for q in range(9)]
JUMP_OFF = "2025Q4"
SEGMENT_EXPOSURE = {"first_lien_mortgage": 600.0, "credit_card": 100.0, "commercial_real_estate": 300.0}


def make_stress_result(scenario_id: str, cet1_ratio: list[float], *, cet1: list[float] | None = None,
                       tier1_leverage_ratio: list[float] | None = None,
                       loss_rate_by_segment: dict[str, float] | None = None,
                       exposure_by_segment: dict[str, float] | None = None) -> dict[str, Any]:
    """A simulation_result.json with the fields compliance and the report read.

    ``cet1_ratio`` is the path including the start (10 values for the 9-quarter horizon), as is
    ``tier1_leverage_ratio`` (default: 0.6 x the CET1 ratio); minimums include the start."""
    exposure_by_segment = exposure_by_segment or SEGMENT_EXPOSURE
    loss_rate_by_segment = loss_rate_by_segment or {s: 0.01 for s in exposure_by_segment}
    exposure = sum(exposure_by_segment.values())
    loss_by_segment = {s: rate * exposure_by_segment[s] for s, rate in loss_rate_by_segment.items()}
    expected_loss = sum(loss_by_segment.values())
    leverage = tier1_leverage_ratio or [0.6 * r for r in cet1_ratio]
    trough = min(range(len(cet1_ratio)), key=cet1_ratio.__getitem__)
    leverage_trough = min(range(len(leverage)), key=leverage.__getitem__)
    return {
        "SimulationId": f"SIM-{scenario_id[:12]}",
        "metrics": {
            "scenario_id": scenario_id, "exposure": exposure, "expected_loss": expected_loss,
            "expected_loss_mc": expected_loss * 1.01, "loss_rate": expected_loss / exposure,
            "var": {"0.990": expected_loss * 3, "0.999": expected_loss * 4},
            "expected_shortfall": {"0.975": expected_loss * 2.9, "0.990": expected_loss * 3.6},
            "loss_by_quarter": [expected_loss / 9] * 9, "loss_by_segment": loss_by_segment,
            "loss_rate_by_segment": loss_rate_by_segment, "exposure_by_segment": exposure_by_segment,
            "loss_distribution": [expected_loss * 5 * i / 200 for i in range(201)],
            "capital": {"cet1_ratio": cet1_ratio, "min_cet1_ratio": cet1_ratio[trough], "min_quarter": trough,
                        "cet1": cet1 or [r * exposure * 0.5 for r in cet1_ratio[1:]],
                        "tier1_leverage_ratio": leverage, "min_tier1_leverage_ratio": leverage[leverage_trough],
                        "min_leverage_quarter": leverage_trough},
            "self_check": self_check(expected_loss, expected_loss * 1.01, expected_loss * 0.02),
        },
        "scenario": {"scenario_id": scenario_id, "fingerprint": f"fp-{scenario_id}", "jump_off_quarter": JUMP_OFF,
                     "quarters": QUARTERS, "path": {"unemployment_rate": [4.0 + q / 2 for q in range(9)],
                                                    "house_price_index": [300.0 - 5 * q for q in range(9)]}},
        "provenance": {"snapshot_id": "snap0123456789abcdef0123", "pd_model": {
            "name": "loan_pd_model", "version": "v-test-1", "alias": "champion", "flavour": "macro_logistic",
            "note": "the promotion gate's champion: gate promoted against none"},
            "airflow_run_id": "manual__test", "seed": 7, "n_paths": 100, "horizon": 9},
    }


@pytest.fixture(name="stress_result", scope="session")
def stress_result_fixture():
    """The :func:`make_stress_result` factory."""
    return make_stress_result
