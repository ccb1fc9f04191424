"""Scenario library: Fed paths with their jump-off, custom YAML scenarios and their validation errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.data.macro import load_history
from pipelines.engine.scenarios import (
    ScenarioError,
    available_scenarios,
    rate_shock_scenario,
    resolve_scenario,
)

HISTORY = load_history()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def test_fed_scenarios_start_after_their_jump_off_quarter():
    for scenario_id in ("2025_severely_adverse", "2026_baseline"):
        scenario = resolve_scenario(scenario_id, history=HISTORY)
        assert scenario.horizon == 9
        assert scenario.jump_off.name == scenario.path.index[0] - 1
    severe = resolve_scenario("2026_severely_adverse", history=HISTORY)
    # The Fed's 2026 severely adverse path: unemployment peaks 5.5 points above its jump-off.
    peak_rise = severe.relative_to_jump_off()["unemployment_rate"].max()
    assert peak_rise == pytest.approx(severe.path["unemployment_rate"].max() - severe.jump_off["unemployment_rate"])
    assert peak_rise > 4


def test_horizon_is_configurable_and_bounded_by_the_published_path():
    assert resolve_scenario("2026_baseline", horizon=4, history=HISTORY).horizon == 4
    with pytest.raises(ScenarioError, match="fewer than the horizon"):
        resolve_scenario("2026_baseline", horizon=20, history=HISTORY)


def test_rate_hike_example_ramps_then_holds():
    scenario = resolve_scenario("rate_hike_300bp", history=HISTORY)
    base = resolve_scenario("2026_baseline", history=HISTORY)
    added = (scenario.path["prime_rate"] - base.path["prime_rate"]).to_numpy()
    assert added[:3] == pytest.approx([1.5, 3.0, 3.0])
    assert np.allclose(added[2:], 3.0)
    assert scenario.rate_shock_bp == 300
    assert "rate_hike_300bp" in available_scenarios()


def test_rate_shock_scenario_adds_basis_points_to_every_rate():
    shocked = rate_shock_scenario("2026_baseline", 250, 9, HISTORY, ramp_quarters=1)
    base = resolve_scenario("2026_baseline", history=HISTORY)
    for rate in ("treasury_3m", "mortgage_rate", "prime_rate"):
        assert (shocked.path[rate] - base.path[rate]).to_numpy() == pytest.approx([2.5] * 9)
    assert (shocked.path["unemployment_rate"] == base.path["unemployment_rate"]).all()
    assert shocked.interest_rate_scenario == pytest.approx(
        (shocked.path["treasury_3m"] - shocked.jump_off["treasury_3m"]).abs().max() / 100)


@pytest.mark.parametrize(("body", "message"), [
    ("id: x\ndescription: d\nbase: 2026_baseline\nhorizon_quarters: 9\nshocks:\n"
     "  - variables: [unemploymnt_rate]\n    add_points: 1\n", "unknown variable"),
    ("id: x\ndescription: d\nbase: 2026_baseline\nhorizon_quarters: 9\nshocks:\n"
     "  - variables: [unemployment_rate]\n    add_points: 1\n    start: 2026Q5\n", "bad quarter"),
    ("id: x\ndescription: d\nbase: 2026_baseline\nhorizon_quarters: 9\nshocks:\n"
     "  - variables: [unemployment_rate]\n    add_points: 1\n    start: 2031Q1\n", "outside the horizon"),
    ("id: x\ndescription: d\nbase: 2026_baseline\nshocks: []\n", "missing horizon_quarters"),
    ("id: x\ndescription: d\nbase: 2019_baseline\nhorizon_quarters: 9\n", "unknown base"),
    ("id: x\ndescription: d\nbase: 2026_baseline\nhorizon_quarters: 9\nshocks:\n"
     "  - variables: [house_price_index]\n    add_points: 1\n    change_pct: -5\n", "exactly one of"),
    ("description: no id\n", "missing"),
    ("[not, a, mapping]\n", "expected a mapping"),
])
def test_bad_scenario_files_fail_with_a_clear_message(tmp_path, body, message):
    with pytest.raises(ScenarioError, match=message):
        resolve_scenario(write(tmp_path, body), history=HISTORY)


def test_unknown_scenario_name_lists_the_available_ones():
    with pytest.raises(ScenarioError, match="available"):
        resolve_scenario("2030_apocalypse", history=HISTORY)


def test_dag_offers_exactly_the_scenario_library():
    import ast

    from pipelines.settings import REPO_ROOT

    tree = ast.parse((REPO_ROOT / "dags" / "loan_stress_test.py").read_text())
    offered = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                   if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SCENARIOS")
    assert sorted(offered) == available_scenarios()
