"""The Fed table loader: shape of the shipped data, and loud failures on malformed files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.data.contract import REFERENCE_INDICES
from pipelines.data.macro import (
    FED_COLUMNS,
    FED_DIR,
    MACRO_VARIABLES,
    REFERENCE_INDEX_VARIABLE,
    join_history,
    list_scenarios,
    load_fed_table,
    load_history,
    load_scenario,
    parse_quarter,
    quarterly_changes,
)

HISTORY_FILE = FED_DIR / "2026_Proposed_Historic_Domestic.csv"
SCENARIO_FILE = FED_DIR / "2026_Proposed_Supervisory_Severely_Adverse_Domestic.csv"


def _write_variant(tmp_path: Path, source: Path, edit) -> Path:
    """A copy of a shipped table, edited as text lines (header first)."""
    lines = source.read_text().splitlines()
    target = tmp_path / source.name
    target.write_text("\n".join(edit(lines)) + "\n")
    return target


# --- shipped data -----------------------------------------------------------------------------------


def test_every_shipped_table_has_exactly_the_mapped_columns() -> None:
    for path in FED_DIR.glob("*.csv"):
        header = path.read_text().splitlines()[0].split(",")
        assert header[2:] == list(FED_COLUMNS), path.name


def test_history_is_the_newest_quarterly_table() -> None:
    history = load_history()
    assert isinstance(history.index, pd.PeriodIndex)
    assert history.index.freqstr.startswith("Q")
    assert history.index[0] == pd.Period("1976Q1", freq="Q")
    assert history.index[-1] == pd.Period("2025Q4", freq="Q")  # the 2026 table, not the 2025 one
    assert tuple(history.columns) == MACRO_VARIABLES
    assert all(dtype == np.float64 for dtype in history.dtypes)
    assert history.attrs["scenario_name"] == "Actual"


def test_history_values_keep_the_fed_units() -> None:
    history = load_history()
    assert history.loc["2008Q4", "unemployment_rate"] == pytest.approx(6.9)  # percent, not 0.069
    assert history.loc["2009Q1", "house_price_index"] == pytest.approx(139.3)
    assert history.loc["2025Q4", "treasury_3m"] == pytest.approx(4.0)


def test_empty_cells_in_early_history_are_nan() -> None:
    history = load_history()
    assert np.isnan(history.loc["1976Q1", "bbb_yield"])
    assert np.isnan(history.loc["1976Q1", "vix"])
    assert not np.isnan(history.loc["1976Q1", "unemployment_rate"])


def test_the_four_supervisory_scenarios_are_listed_by_short_id() -> None:
    assert set(list_scenarios()) == {"2025_baseline", "2025_severely_adverse", "2026_baseline",
                                     "2026_severely_adverse"}


@pytest.mark.parametrize(("scenario_id", "first", "name"), [
    ("2025_baseline", "2025Q1", "Supervisory Baseline"),
    ("2025_severely_adverse", "2025Q1", "Supervisory Severely Adverse"),
    ("2026_baseline", "2026Q1", "Supervisory Baseline"),
    ("2026_severely_adverse", "2026Q1", "Supervisory Severely Adverse"),
])
def test_load_scenario(scenario_id: str, first: str, name: str) -> None:
    scenario = load_scenario(scenario_id)
    assert len(scenario) == 13
    assert scenario.index[0] == pd.Period(first, freq="Q")
    assert scenario.attrs["scenario_name"] == name
    assert not scenario.isna().any().any()


def test_severely_adverse_is_worse_than_baseline() -> None:
    adverse, baseline = load_scenario("2026_severely_adverse"), load_scenario("2026_baseline")
    assert adverse["unemployment_rate"].max() > baseline["unemployment_rate"].max() + 3
    assert adverse["house_price_index"].min() < baseline["house_price_index"].min()


def test_unknown_scenario_id_names_the_available_ones() -> None:
    with pytest.raises(ValueError, match="2026_severely_adverse"):
        load_scenario("2026_mildly_annoying")


def test_history_lookup_fails_without_tables(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_history(tmp_path)


def test_scenarios_are_found_in_another_directory(tmp_path: Path) -> None:
    shutil.copy(SCENARIO_FILE, tmp_path)
    assert list(list_scenarios(tmp_path)) == ["2026_severely_adverse"]
    assert len(load_scenario("2026_severely_adverse", tmp_path)) == 13


# --- quarters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("2026 Q1", "2026Q1"), ("1976 Q4", "1976Q4"),
                                                (" 2025 Q2 ", "2025Q2")])
def test_parse_quarter(text: str, expected: str) -> None:
    assert parse_quarter(text) == pd.Period(expected, freq="Q")


@pytest.mark.parametrize("text", ["2026 Q5", "2026 Q0", "2026Q1", "2026-03-31", "Q1 2026", "26 Q1", "", "2026 q1"])
def test_parse_quarter_rejects_other_formats(text: str) -> None:
    with pytest.raises(ValueError, match="bad quarter"):
        parse_quarter(text)


@given(year=st.integers(min_value=1900, max_value=2200), quarter=st.integers(min_value=1, max_value=4))
def test_parse_quarter_round_trips(year: int, quarter: int) -> None:
    period = parse_quarter(f"{year} Q{quarter}")
    assert (period.year, period.quarter) == (year, quarter)


# --- malformed files --------------------------------------------------------------------------------


def test_missing_column_is_named(tmp_path: Path) -> None:
    def drop_vix(lines: list[str]) -> list[str]:
        return [line.rsplit(",", 1)[0] for line in lines]

    with pytest.raises(ValueError, match=r"missing columns \['Market Volatility Index \(Level\)'\]"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, drop_vix))


def test_unknown_column_is_named(tmp_path: Path) -> None:
    def add_column(lines: list[str]) -> list[str]:
        return [lines[0] + ",Bitcoin price", *(line + ",1" for line in lines[1:])]

    with pytest.raises(ValueError, match=r"unknown columns \['Bitcoin price'\]"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, add_column))


def test_renamed_column_is_both_unknown_and_missing(tmp_path: Path) -> None:
    def rename(lines: list[str]) -> list[str]:
        return [lines[0].replace("Unemployment rate", "Jobless rate"), *lines[1:]]

    with pytest.raises(ValueError, match=r"Jobless rate.*Unemployment rate"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, rename))


def test_bad_date_is_reported_with_the_file(tmp_path: Path) -> None:
    def bad_date(lines: list[str]) -> list[str]:
        return [lines[0], lines[1].replace("2026 Q1", "2026-03-31"), *lines[2:]]

    with pytest.raises(ValueError, match=r"Severely_Adverse_Domestic\.csv: bad quarter '2026-03-31'"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, bad_date))


def test_duplicate_quarter_is_rejected(tmp_path: Path) -> None:
    def duplicate(lines: list[str]) -> list[str]:
        return [*lines, lines[-1]]

    with pytest.raises(ValueError, match="consecutive and unique"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, duplicate))


def test_gap_between_quarters_is_rejected(tmp_path: Path) -> None:
    def gap(lines: list[str]) -> list[str]:
        return [lines[0], lines[1], *lines[3:]]

    with pytest.raises(ValueError, match="broken at 2026Q3"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, gap))


def test_non_numeric_value_is_reported(tmp_path: Path) -> None:
    def text_value(lines: list[str]) -> list[str]:
        cells = lines[2].split(",")
        cells[6] = "n/a"  # Unemployment rate
        return [lines[0], lines[1], ",".join(cells), *lines[3:]]

    with pytest.raises(ValueError, match=r"non-numeric 'Unemployment rate' value 'n/a' in 2026Q2"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, text_value))


def test_mixed_scenario_names_are_rejected(tmp_path: Path) -> None:
    def mix(lines: list[str]) -> list[str]:
        return [lines[0], lines[1].replace("Supervisory Severely Adverse", "Custom"), *lines[2:]]

    with pytest.raises(ValueError, match="one scenario name"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, mix))


def test_empty_file_and_header_only_file_are_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_fed_table(empty)
    with pytest.raises(ValueError, match="no rows"):
        load_fed_table(_write_variant(tmp_path, SCENARIO_FILE, lambda lines: lines[:1]))


def test_byte_order_mark_and_padded_headers_are_tolerated(tmp_path: Path) -> None:
    def pad(lines: list[str]) -> list[str]:
        return [", ".join(lines[0].split(",")), *lines[1:]]

    path = _write_variant(tmp_path, SCENARIO_FILE, pad)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    pd.testing.assert_frame_equal(load_fed_table(path), load_fed_table(SCENARIO_FILE))


# --- derived frames ---------------------------------------------------------------------------------


def test_changes_are_points_for_rates_and_percent_for_levels() -> None:
    changes = quarterly_changes(load_history())
    assert changes.loc["2009Q4", "unemployment_rate_chg_4q"] == pytest.approx(9.9 - 6.9)
    assert changes.loc["2009Q1", "house_price_index_chg_4q"] == pytest.approx((139.3 / 165.8 - 1) * 100)
    assert changes.iloc[:4].isna().all().all()
    assert set(changes.columns) == {f"{name}_chg_4q" for name in MACRO_VARIABLES}


def test_join_history_gives_scenario_changes_from_the_first_quarter() -> None:
    scenario = load_scenario("2026_severely_adverse")
    joined = join_history(scenario, load_history())
    assert joined.index[-1] == scenario.index[-1]
    assert (np.diff(joined.index.asi8) == 1).all()
    assert joined.attrs["scenario_name"] == "Supervisory Severely Adverse"
    changes = quarterly_changes(joined).loc[scenario.index]
    assert changes.loc["2026Q1", "unemployment_rate_chg_4q"] == pytest.approx(5.9 - 4.1)  # vs 2025Q1


def test_join_history_refuses_a_gap() -> None:
    history = load_history().loc[:"2025Q2"]
    with pytest.raises(ValueError, match="quarter before the scenario start 2026Q1"):
        join_history(load_scenario("2026_baseline"), history)


def test_reference_indices_map_to_macro_variables() -> None:
    assert set(REFERENCE_INDEX_VARIABLE) == set(REFERENCE_INDICES)
    assert set(REFERENCE_INDEX_VARIABLE.values()) <= set(MACRO_VARIABLES)
