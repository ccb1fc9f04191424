"""Stress scenarios: the Fed's supervisory paths and custom YAML scenarios built on them.

A :class:`Scenario` is a quarterly macro path over the horizon plus its jump-off quarter (the last
historical quarter before the path starts), taken from the Fed's historic table. Projections use
the path's *changes from jump-off* (rates in points, index levels in percent), so a scenario
published for one jump-off can be applied to a book as of another date.

Custom scenario file (YAML)::

    id: rate_hike_300bp
    description: +300 bp on short rates, prime and mortgage rates, ramped over 2 quarters, then held
    base: 2026_baseline            # a shipped Fed scenario id
    horizon_quarters: 9            # optional, default 9
    shocks:
      - variables: [treasury_3m, prime_rate, mortgage_rate]
        add_points: 3.0            # percentage points added to a rate
        ramp_quarters: 2           # reach the full shock linearly over 2 quarters, then hold
      - variables: [house_price_index]
        change_pct: -10            # percent change of an index level
        start: 2026Q2              # optional: first quarter of the shock (default: the first)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.data.macro import LEVEL_VARIABLES, MACRO_VARIABLES, list_scenarios, load_history, load_scenario
from pipelines.settings import REPO_ROOT

CUSTOM_DIR = REPO_ROOT / "scenarios" / "custom"
DEFAULT_HORIZON = 9
RATE_VARIABLES = ("treasury_3m", "treasury_5y", "treasury_10y", "prime_rate", "mortgage_rate", "bbb_yield")
BP_PER_POINT = 100
_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$")
# A scenario id names object keys (runs/<run>/scenarios/<id>.json, .../simulation/<id>/...): only plain
# names, so an id can never point a write at another object (``../../snapshots/<sid>/manifest``).
SCENARIO_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ScenarioError(ValueError):
    """A scenario file or request that cannot be built; the message says what and where."""


@dataclass(frozen=True)
class Scenario:
    """A macro path over the horizon, with the jump-off quarter it is measured from."""

    scenario_id: str
    description: str
    path: pd.DataFrame  # index: quarters of the horizon, columns: MACRO_VARIABLES
    jump_off: pd.Series  # the quarter before path.index[0]
    rate_shock_bp: float = 0.0

    @property
    def horizon(self) -> int:
        return len(self.path)

    @property
    def start_date(self) -> str:
        return self.path.index[0].start_time.date().isoformat()

    @property
    def end_date(self) -> str:
        return self.path.index[-1].end_time.date().isoformat()

    @property
    def interest_rate_scenario(self) -> float:
        """Largest move of the 3-month Treasury from jump-off over the horizon, as a decimal (0.03 = +300 bp)."""
        moves = self.path["treasury_3m"] - self.jump_off["treasury_3m"]
        return round(float(moves.iloc[int(np.abs(moves.to_numpy()).argmax())]) / 100, 6)

    def relative_to_jump_off(self) -> pd.DataFrame:
        """Changes from jump-off: points for rates and percentages, ratios (1.0 = unchanged) for levels."""
        changes = {}
        for name in self.path.columns:
            if name in LEVEL_VARIABLES:
                changes[name] = self.path[name] / self.jump_off[name]
            else:
                changes[name] = self.path[name] - self.jump_off[name]
        return pd.DataFrame(changes, index=self.path.index)

    def fingerprint(self) -> str:
        """Hash of the numbers, so a result names exactly the path it used."""
        payload = json.dumps({"id": self.scenario_id, "path": self.path.round(6).to_json(),
                              "jump_off": self.jump_off.round(6).to_json()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario_id": self.scenario_id, "description": self.description, "fingerprint": self.fingerprint(),
            "jump_off_quarter": str(self.jump_off.name), "quarters": [str(q) for q in self.path.index],
            "path": {name: self.path[name].round(4).tolist() for name in self.path.columns},
        }


def _fed_scenario(scenario_id: str, horizon: int, history: pd.DataFrame) -> Scenario:
    frame = load_scenario(scenario_id)
    if len(frame) < horizon:
        raise ScenarioError(f"scenario {scenario_id!r} has {len(frame)} quarters, fewer than the horizon {horizon}")
    jump_off_quarter = frame.index[0] - 1
    if jump_off_quarter not in history.index:
        raise ScenarioError(f"no history for the jump-off quarter {jump_off_quarter} of {scenario_id!r}")
    jump_off = history.loc[jump_off_quarter].copy()
    # Series published later than the early history (BBB, equities, VIX) may be missing at jump-off.
    jump_off = jump_off.fillna(frame.iloc[0])
    description = f"Federal Reserve {frame.attrs.get('scenario_name', scenario_id)} ({scenario_id[:4]})"
    return Scenario(scenario_id, description, frame.iloc[:horizon], jump_off)


def _parse_quarter(text: Any, where: str) -> pd.Period:
    match = _QUARTER.match(str(text).strip())
    if match is None:
        raise ScenarioError(f"{where}: bad quarter {text!r}, expected e.g. 2026Q2")
    return pd.Period(year=int(match[1]), quarter=int(match[2]), freq="Q")


def apply_shocks(base: Scenario, shocks: list[dict[str, Any]], where: str = "shocks") -> pd.DataFrame:
    """The base path with additive (points) or relative (percent) shocks, ramped linearly then held."""
    path = base.path.copy()
    for number, shock in enumerate(shocks, start=1):
        here = f"{where}[{number}]"
        if not isinstance(shock, dict):
            raise ScenarioError(f"{here}: a shock is a mapping with 'variables' and 'add_points' or 'change_pct'")
        unknown_keys = set(shock) - {"variables", "add_points", "change_pct", "ramp_quarters", "start"}
        if unknown_keys:
            raise ScenarioError(f"{here}: unknown keys {sorted(unknown_keys)}")
        variables = shock.get("variables") or []
        unknown = [v for v in variables if v not in MACRO_VARIABLES]
        if not variables or unknown:
            raise ScenarioError(f"{here}: unknown variable(s) {unknown or '(none given)'}; "
                                f"known: {', '.join(MACRO_VARIABLES)}")
        if ("add_points" in shock) == ("change_pct" in shock):
            raise ScenarioError(f"{here}: give exactly one of add_points (rates) or change_pct (index levels)")
        ramp = int(shock.get("ramp_quarters", 1))
        if ramp < 1:
            raise ScenarioError(f"{here}: ramp_quarters must be at least 1")
        start = _parse_quarter(shock["start"], here) if "start" in shock else path.index[0]
        if start not in path.index:
            raise ScenarioError(f"{here}: start {start} is outside the horizon {path.index[0]}..{path.index[-1]}")
        elapsed = (path.index.asi8 - start.ordinal + 1).astype(float)
        weight = np.clip(elapsed / ramp, 0.0, 1.0)
        for variable in variables:
            if "add_points" in shock:
                path[variable] = path[variable] + weight * float(shock["add_points"])
            else:
                path[variable] = path[variable] * (1 + weight * float(shock["change_pct"]) / 100)
    return path


def load_custom(path: Path, history: pd.DataFrame) -> Scenario:
    """Build a scenario from a YAML file; errors name the file and the offending entry."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ScenarioError(f"{path}: cannot read scenario file: {error}") from error
    if not isinstance(spec, dict):
        raise ScenarioError(f"{path}: expected a mapping with id, description, base, shocks")
    missing = [key for key in ("id", "description", "base") if key not in spec]
    if missing:
        raise ScenarioError(f"{path}: missing {missing}")
    if not isinstance(spec["id"], str) or SCENARIO_ID.fullmatch(spec["id"]) is None:
        raise ScenarioError(f"{path}: scenario id {spec['id']!r} is not allowed: use 1 to 64 lower-case letters, "
                            "digits, '_' or '-', starting with a letter or digit")
    horizon = spec.get("horizon_quarters")
    if horizon is None:
        raise ScenarioError(f"{path}: missing horizon_quarters (the number of quarters to project)")
    base = _fed_scenario(str(spec["base"]), int(horizon), history) if spec["base"] in list_scenarios() else None
    if base is None:
        raise ScenarioError(f"{path}: unknown base {spec['base']!r}; shipped: {sorted(list_scenarios())}")
    shocked = apply_shocks(base, spec.get("shocks") or [], where=f"{path.name} shocks")
    rate_shock = max((float(s.get("add_points", 0)) for s in spec.get("shocks") or []
                      if set(s.get("variables", [])) & set(RATE_VARIABLES)), default=0.0)
    return Scenario(spec["id"], str(spec["description"]), shocked, base.jump_off, rate_shock * BP_PER_POINT)


def rate_shock_scenario(base_id: str, shock_bp: float, horizon: int, history: pd.DataFrame,
                        ramp_quarters: int = 2) -> Scenario:
    """A base scenario with ``shock_bp`` on every interest rate, ramped in then held (the UI's rate shock)."""
    base = _fed_scenario(base_id, horizon, history)
    shocked = apply_shocks(base, [{"variables": list(RATE_VARIABLES), "add_points": shock_bp / BP_PER_POINT,
                                   "ramp_quarters": ramp_quarters}])
    return Scenario(f"{base_id}_rates_{shock_bp:+.0f}bp",
                    f"{base.description} with {shock_bp:+.0f} bp on all interest rates, ramped over "
                    f"{ramp_quarters} quarters, then held", shocked, base.jump_off, shock_bp)


def available_scenarios() -> list[str]:
    """Ids a run can name: the Fed's shipped scenarios and the custom files in scenarios/custom."""
    return sorted(list_scenarios()) + sorted(p.stem for p in CUSTOM_DIR.glob("*.yaml"))


def resolve_scenario(name: str, horizon: int = DEFAULT_HORIZON, history: pd.DataFrame | None = None) -> Scenario:
    """A shipped Fed scenario id, a custom scenario id in scenarios/custom, or a path to a YAML file."""
    history = load_history() if history is None else history
    if name in list_scenarios():
        return _fed_scenario(name, horizon, history)
    path = Path(name) if name.endswith((".yaml", ".yml")) else CUSTOM_DIR / f"{name}.yaml"
    if not path.exists():
        raise ScenarioError(f"unknown scenario {name!r}; available: {available_scenarios()}")
    scenario = load_custom(path, history)
    if scenario.horizon < horizon:
        raise ScenarioError(f"{path}: horizon_quarters {scenario.horizon} is shorter than the run's horizon {horizon}")
    return Scenario(scenario.scenario_id, scenario.description, scenario.path.iloc[:horizon], scenario.jump_off,
                    scenario.rate_shock_bp)
