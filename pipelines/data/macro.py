"""Federal Reserve macro tables (history and supervisory scenarios) as tidy quarterly frames.

Every consumer (the synthetic data generator, the PD models, the scenario simulation and the custom
YAML scenarios built on top of the Fed's) reads macro data through :func:`load_fed_table`, so they all
see the same shape: one row per quarter, indexed by a ``pd.Period`` of frequency ``Q``, one float
column per variable under a canonical snake_case name (:data:`FED_COLUMNS`).

Units are the Fed's, unchanged: rates, yields, growth rates and inflation are in **percent**
(``4.3`` means 4.3 %, growth rates are annualised quarter-on-quarter), while the four ``(Level)``
variables are index levels. The loan tape stores rates as fractions, so divide a rate by
:data:`PERCENT` before comparing it with ``InterestRate``. Missing early history (BBB yield, equity
index and VIX before they existed) stays ``NaN``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.settings import REPO_ROOT

FED_DIR = REPO_ROOT / "scenarios" / "fed"
PERCENT = 100.0

SCENARIO_NAME_COLUMN = "Scenario Name"
DATE_COLUMN = "Date"

# Fed column header -> canonical name, in the Fed's column order.
FED_COLUMNS: dict[str, str] = {
    "Real GDP growth": "real_gdp_growth",
    "Nominal GDP growth": "nominal_gdp_growth",
    "Real disposable income growth": "real_disposable_income_growth",
    "Nominal disposable income growth": "nominal_disposable_income_growth",
    "Unemployment rate": "unemployment_rate",
    "CPI inflation rate": "cpi_inflation",
    "3-month Treasury rate": "treasury_3m",
    "5-year Treasury yield": "treasury_5y",
    "10-year Treasury yield": "treasury_10y",
    "BBB corporate yield": "bbb_yield",
    "Mortgage rate": "mortgage_rate",
    "Prime rate": "prime_rate",
    "Dow Jones Total Stock Market Index (Level)": "equity_index",
    "House Price Index (Level)": "house_price_index",
    "Commercial Real Estate Price Index (Level)": "cre_price_index",
    "Market Volatility Index (Level)": "vix",
}
MACRO_VARIABLES: tuple[str, ...] = tuple(FED_COLUMNS.values())
# Bounds no published history or supervisory scenario comes near (the 2020 quarters reached -28 % and +65 %
# annualised growth, 13 % unemployment, 20 % prime rate): they catch a unit mistake or a corrupt download
# before it reaches a scenario, without second-guessing a severe scenario.
_GROWTH = (-100.0, 200.0)
_RATE = (-5.0, 50.0)
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "real_gdp_growth": _GROWTH, "nominal_gdp_growth": _GROWTH, "real_disposable_income_growth": _GROWTH,
    "nominal_disposable_income_growth": _GROWTH, "unemployment_rate": (0.0, 50.0), "cpi_inflation": (-50.0, 100.0),
    "treasury_3m": _RATE, "treasury_5y": _RATE, "treasury_10y": _RATE, "bbb_yield": _RATE, "mortgage_rate": _RATE,
    "prime_rate": _RATE, "equity_index": (1e-6, 1e9), "house_price_index": (1e-6, 1e6),
    "cre_price_index": (1e-6, 1e6), "vix": (1.0, 200.0),
}
# Index levels change in percent; everything else is already a percentage and changes in points.
LEVEL_VARIABLES = frozenset(name for header, name in FED_COLUMNS.items() if header.endswith("(Level)"))

# The loan tape's ReferenceIndex values -> the macro variable a variable-rate loan reprices on.
REFERENCE_INDEX_VARIABLE: dict[str, str] = {
    "treasury_3m": "treasury_3m",
    "treasury_5y": "treasury_5y",
    "prime": "prime_rate",
    "mortgage": "mortgage_rate",
}

_QUARTER_PATTERN = re.compile(r"^(\d{4}) Q([1-4])$")
# File names as the Fed publishes them, e.g. 2026_Proposed_Supervisory_Severely_Adverse_Domestic.csv.
_HISTORY_FILE = re.compile(r"^(?P<year>\d{4})\D.*Historic_Domestic\.csv$")
_SCENARIO_FILE = re.compile(r"^(?P<year>\d{4})\D.*Supervisory_(?P<kind>Baseline|Severely_Adverse)_Domestic\.csv$")


def parse_quarter(text: str) -> pd.Period:
    """Parse the Fed's ``'YYYY Qn'`` date label; anything else is an error, never a guess."""
    match = _QUARTER_PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"bad quarter {text!r}: expected 'YYYY Qn', e.g. '2026 Q1'")
    return pd.Period(year=int(match[1]), quarter=int(match[2]), freq="Q")


def load_fed_table(path: str | Path) -> pd.DataFrame:
    """Read one Fed CSV table (history or scenario) into the canonical quarterly frame (:func:`parse_fed_table`)."""
    path = Path(path)
    return parse_fed_table(path.read_bytes(), path.name)


def parse_fed_table(data: bytes, name: str) -> pd.DataFrame:
    """Parse the bytes of one Fed CSV table (a shipped file or a download) into the canonical quarterly frame.

    The Fed's layout is checked strictly (exact column set, unique consecutive quarters, numeric
    values within :data:`PLAUSIBLE_RANGES`) because a silently misread column would flow into every
    stress result. ``name`` (the file name or URL) starts every error message. The Fed's
    ``Scenario Name`` is kept in ``frame.attrs["scenario_name"]``.
    """
    try:
        raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{name}: empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: not a readable CSV table ({exc})") from exc
    raw.columns = [str(c).strip() for c in raw.columns]

    expected = {SCENARIO_NAME_COLUMN, DATE_COLUMN, *FED_COLUMNS}
    unknown = [c for c in raw.columns if c not in expected]
    missing = [c for c in (SCENARIO_NAME_COLUMN, DATE_COLUMN, *FED_COLUMNS) if c not in raw.columns]
    if unknown or missing:
        raise ValueError(f"{name}: unknown columns {unknown}, missing columns {missing}")
    if raw.empty:
        raise ValueError(f"{name}: no rows")

    try:
        quarters = pd.PeriodIndex([parse_quarter(d) for d in raw[DATE_COLUMN]], name="quarter")
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    steps = np.diff(quarters.asi8)
    if (steps != 1).any():
        bad = quarters[1:][steps != 1][0]
        raise ValueError(f"{name}: quarters must be consecutive and unique, broken at {bad}")

    names = raw[SCENARIO_NAME_COLUMN].str.strip().unique()
    if len(names) != 1:
        raise ValueError(f"{name}: expected one scenario name, found {list(names)}")

    frame = pd.DataFrame(index=quarters)
    for header, variable in FED_COLUMNS.items():
        text = raw[header].str.strip()
        values = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad_cells = values.isna() & (text != "")
        if bad_cells.any():
            first = bad_cells.to_numpy().argmax()
            raise ValueError(f"{name}: non-numeric {header!r} value {text.iloc[first]!r} "
                             f"in {quarters[first]}")
        frame[variable] = values.to_numpy(dtype=float)
        # Only a series that did not exist yet may be missing: a gap after its first value is a fault (a
        # truncated download ends in short rows, read as empty cells).
        observed = values.notna().to_numpy()
        if observed.any() and not observed[observed.argmax():].all():
            gap = observed.argmax() + int((~observed[observed.argmax():]).argmax())
            raise ValueError(f"{name}: {header!r} is missing in {quarters[gap]} after earlier quarters had it "
                             "(a truncated or corrupt table)")
    check_plausible(frame, name)
    frame.attrs["scenario_name"] = str(names[0])
    return frame


def check_plausible(frame: pd.DataFrame, name: str) -> None:
    """Every value of the canonical columns within its :data:`PLAUSIBLE_RANGES`, else a ValueError naming the cell.

    Missing values pass (early history has none for some series); infinities do not.
    """
    for variable in frame.columns.intersection(list(PLAUSIBLE_RANGES)):
        low, high = PLAUSIBLE_RANGES[variable]
        values = frame[variable].to_numpy(dtype=float)
        outside = ~np.isnan(values) & ((values < low) | (values > high))
        if outside.any():
            first = int(outside.argmax())
            raise ValueError(f"{name}: {variable} = {values[first]:g} in {frame.index[first]} is outside the "
                             f"plausible range [{low:g}, {high:g}] (a unit mistake, basis points or a fraction "
                             "for a percentage, or a corrupt table)")


def is_fed_table_name(file_name: str) -> bool:
    """Whether :func:`load_history` or :func:`list_scenarios` would read a file of this name."""
    return bool(_HISTORY_FILE.match(file_name) or _SCENARIO_FILE.match(file_name))


def _tables_by_id(directory: Path, pattern: re.Pattern[str]) -> dict[str, Path]:
    """Map each matching file's id to its path; the id sorts by publication year."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.csv")):
        match = pattern.match(path.name)
        if match is not None:
            kind = match.groupdict().get("kind")
            found[match["year"] if kind is None else f"{match['year']}_{kind.lower()}"] = path
    return found


def load_history(directory: Path = FED_DIR) -> pd.DataFrame:
    """The newest published quarterly history: it is the longest and includes revisions."""
    tables = _tables_by_id(directory, _HISTORY_FILE)
    if not tables:
        raise FileNotFoundError(f"no '*Historic_Domestic.csv' table in {directory}")
    return load_fed_table(tables[max(tables)])


def list_scenarios(directory: Path = FED_DIR) -> dict[str, Path]:
    """Shipped supervisory scenarios by short id, e.g. ``'2026_severely_adverse'``."""
    return _tables_by_id(directory, _SCENARIO_FILE)


def load_scenario(scenario_id: str, directory: Path = FED_DIR) -> pd.DataFrame:
    """Load a shipped supervisory scenario by its short id (see :func:`list_scenarios`)."""
    scenarios = list_scenarios(directory)
    if scenario_id not in scenarios:
        raise ValueError(f"unknown scenario {scenario_id!r}; available: {sorted(scenarios)}")
    return load_fed_table(scenarios[scenario_id])


def quarterly_changes(frame: pd.DataFrame, quarters: int = 4) -> pd.DataFrame:
    """Change of every variable over ``quarters``: percentage points for percentages, percent for levels.

    One convention for everyone, so a model trained on history features and a scenario projection
    measure a "4-quarter change in house prices" the same way. Columns are ``<name>_chg_<n>q``;
    the first ``quarters`` rows are ``NaN`` unless history is joined in front (:func:`join_history`).
    """
    changes = {}
    for name in frame.columns:
        if name in LEVEL_VARIABLES:
            changes[f"{name}_chg_{quarters}q"] = frame[name].pct_change(quarters, fill_method=None) * PERCENT
        else:
            changes[f"{name}_chg_{quarters}q"] = frame[name].diff(quarters)
    return pd.DataFrame(changes, index=frame.index)


def join_history(scenario: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """History up to the quarter before the scenario starts, then the scenario.

    Lags and changes at the start of a projection need the quarters before it; a gap between
    history and scenario would silently shift them, so it is an error.
    """
    start = scenario.index[0]
    before = history.loc[history.index < start]
    if before.empty or before.index[-1] != start - 1:
        raise ValueError(f"history does not reach the quarter before the scenario start {start}")
    joined = pd.concat([before[scenario.columns], scenario])
    joined.attrs = dict(scenario.attrs)
    return joined
