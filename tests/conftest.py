"""Shared fixtures: isolated settings, a hand-written contract-valid loan tape, and PostgreSQL.

Heavy libraries (pyarrow, GX, psycopg) are imported inside the fixtures that need them, so collecting
the test suite stays fast.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.data.contract import COLUMN_NAMES, REQUIRED_COLUMNS

POSTGRES_SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
POSTGRES_TEST_URL = f"{POSTGRES_SERVER_URL}/test"

# A hand-written tape: four loans per segment, fixed and variable rates, secured loans with collateral,
# unsecured loans without. Columns in contract order:
# LoanId, CustomerId, LoanAmount, InterestRate, LoanStartDate, LoanMaturityDate, LoanType,
# RepaymentSchedule, CurrentBalance, DefaultRiskScore, RateType, ReferenceIndex, RateMargin,
# BorrowerIncome, CreditScore, CollateralValue, Region, ProductSegment, DaysPastDue (the required columns;
# the optional ones are empty)
_VALID_LOANS: tuple[tuple[str, ...], ...] = (
    ("M-0001", "C-001", "350000.00", "0.0650", "2019-03-15", "2049-03-15", "MORTGAGE_30Y_FIXED", "annuity",
     "318250.12", "0.0120", "fixed", "", "", "142000.00", "741", "455000.00", "northeast", "first_lien_mortgage",
     "0"),
    ("M-0002", "C-002", "123456.78", "0.0425", "2021-07-01", "2036-07-01", "MORTGAGE_15Y_FIXED", "annuity",
     "101234.56", "0.0080", "fixed", "", "", "88000.00", "780", "210000.00", "midwest", "first_lien_mortgage",
     "0"),
    ("M-0003", "C-003", "512000.00", "0.0710", "2022-01-10", "2052-01-10", "MORTGAGE_30Y_ARM", "annuity",
     "505111.90", "0.0310", "variable", "mortgage", "0.0225", "165000.50", "702", "640000.00", "west",
     "first_lien_mortgage", "30"),
    ("M-0004", "C-004", "275000.00", "0.0590", "2018-11-30", "2048-11-30", "MORTGAGE_30Y_ARM", "annuity",
     "240000.00", "0.0190", "variable", "treasury_5y", "0.0175", "97000.00", "688", "300000.00", "south",
     "first_lien_mortgage", "0"),
    ("H-0001", "C-005", "80000.00", "0.0899", "2020-05-20", "2030-05-20", "HELOC_10Y_DRAW", "revolving",
     "35200.00", "0.0250", "variable", "prime", "0.0050", "120000.00", "725", "390000.00", "northeast",
     "heloc", "0"),
    ("H-0002", "C-006", "50000.00", "0.0950", "2021-02-01", "2031-02-01", "HELOC_10Y_DRAW", "revolving",
     "51200.00", "0.0410", "variable", "prime", "0.0100", "76000.00", "664", "280000.00", "south", "heloc",
     "60"),
    ("H-0003", "C-007", "120000.00", "0.0725", "2017-09-12", "2027-09-12", "HELOC_FIXED_OPTION", "interest_only",
     "99000.00", "0.0150", "fixed", "", "", "210000.00", "760", "720000.00", "west", "heloc", "0"),
    ("H-0004", "C-001", "30000.00", "0.0880", "2023-04-04", "2033-04-04", "HELOC_10Y_DRAW", "revolving",
     "0.00", "0.0090", "variable", "prime", "0.0000", "142000.00", "741", "455000.00", "northeast", "heloc",
     "0"),
    ("A-0001", "C-008", "32000.00", "0.0549", "2022-06-15", "2027-06-15", "AUTO_60M_NEW", "annuity",
     "21450.33", "0.0220", "fixed", "", "", "64000.00", "705", "27000.00", "midwest", "auto", "0"),
    ("A-0002", "C-009", "18500.00", "0.1299", "2023-01-05", "2029-01-05", "AUTO_72M_USED", "annuity",
     "16870.01", "0.0870", "fixed", "", "", "41000.00", "612", "14200.00", "south", "auto", "15"),
    ("A-0003", "C-010", "45990.99", "0.0399", "2021-12-20", "2026-12-20", "AUTO_60M_NEW", "annuity",
     "19999.99", "0.0060", "fixed", "", "", "150000.00", "801", "36000.00", "west", "auto", "0"),
    ("A-0004", "C-011", "27000.00", "0.0825", "2022-09-09", "2028-09-09", "AUTO_72M_VARIABLE", "annuity",
     "22100.00", "0.0330", "variable", "treasury_3m", "0.0350", "52000.00", "655", "19000.00", "northeast",
     "auto", "0"),
    ("K-0001", "C-012", "5000.00", "0.2299", "2019-01-01", "2029-01-01", "CARD_STANDARD", "revolving",
     "4321.09", "0.0610", "variable", "prime", "0.1450", "48000.00", "640", "", "south", "credit_card", "0"),
    ("K-0002", "C-013", "15000.00", "0.1899", "2020-08-15", "2030-08-15", "CARD_REWARDS", "revolving",
     "1200.00", "0.0150", "variable", "prime", "0.1050", "135000.00", "790", "", "west", "credit_card", "0"),
    ("K-0003", "C-014", "2500.00", "0.2599", "2023-03-03", "2033-03-03", "CARD_SECURED_PROMO", "revolving",
     "2600.00", "0.1800", "fixed", "", "", "22000.00", "580", "", "midwest", "credit_card", "90"),
    ("K-0004", "C-008", "8000.00", "0.2149", "2021-10-10", "2031-10-10", "CARD_STANDARD", "revolving",
     "0.00", "0.0400", "variable", "prime", "0.1300", "64000.00", "705", "", "midwest", "credit_card", "0"),
    ("P-0001", "C-015", "12000.00", "0.1150", "2022-02-14", "2027-02-14", "PERSONAL_60M", "annuity",
     "8123.45", "0.0450", "fixed", "", "", "58000.00", "670", "", "northeast", "personal", "0"),
    ("P-0002", "C-016", "25000.00", "0.0999", "2023-05-01", "2028-05-01", "PERSONAL_60M", "annuity",
     "23010.00", "0.0280", "fixed", "", "", "91000.00", "720", "", "south", "personal", "0"),
    ("P-0003", "C-017", "7500.00", "0.1675", "2021-06-30", "2024-06-30", "PERSONAL_36M", "annuity",
     "1500.75", "0.1200", "fixed", "", "", "33000.00", "601", "", "west", "personal", "120"),
    ("P-0004", "C-018", "40000.00", "0.0875", "2020-01-15", "2025-01-15", "PERSONAL_BULLET", "bullet",
     "40000.00", "0.0200", "variable", "treasury_3m", "0.0400", "250000.00", "755", "", "midwest", "personal",
     "0"),
    ("R-0001", "B-101", "4500000.00", "0.0610", "2018-04-01", "2028-04-01", "CRE_OFFICE_10Y", "interest_only",
     "4500000.00", "0.0350", "fixed", "", "", "520000.00", "690", "6200000.00", "northeast",
     "commercial_real_estate", "0"),
    ("R-0002", "B-102", "12500000.00", "0.0725", "2021-09-30", "2031-09-30", "CRE_RETAIL_10Y", "annuity",
     "11870000.55", "0.0480", "variable", "treasury_5y", "0.0275", "1650000.00", "675", "15800000.00", "south",
     "commercial_real_estate", "0"),
    ("R-0003", "B-103", "2750000.00", "0.0575", "2019-12-12", "2026-12-12", "CRE_MULTIFAMILY_7Y", "bullet",
     "2750000.00", "0.0150", "fixed", "", "", "410000.00", "735", "3900000.00", "west", "commercial_real_estate",
     "0"),
    ("R-0004", "B-104", "8000000.00", "0.0790", "2022-03-31", "2029-03-31", "CRE_INDUSTRIAL_7Y", "annuity",
     "7612345.67", "0.0620", "variable", "treasury_3m", "0.0300", "980000.00", "650", "9100000.00", "midwest",
     "commercial_real_estate", "30"),
    ("I-0001", "B-201", "3000000.00", "0.0680", "2020-07-01", "2025-07-01", "CI_TERM_5Y", "annuity",
     "1210000.00", "0.0260", "fixed", "", "", "2400000.00", "710", "", "northeast", "commercial_industrial", "0"),
    ("I-0002", "B-202", "10000000.00", "0.0740", "2022-11-15", "2025-11-15", "CI_REVOLVER_3Y", "revolving",
     "6500000.00", "0.0330", "variable", "treasury_3m", "0.0250", "7800000.00", "700", "", "south",
     "commercial_industrial", "0"),
    ("I-0003", "B-203", "1500000.00", "0.0815", "2021-04-20", "2028-04-20", "CI_EQUIPMENT_7Y", "annuity",
     "1020000.00", "0.0510", "variable", "prime", "0.0175", "900000.00", "662", "1250000.00", "west",
     "commercial_industrial", "0"),
    ("I-0004", "B-204", "600000.00", "0.0925", "2023-02-28", "2026-02-28", "CI_TERM_3Y", "bullet",
     "600000.00", "0.0900", "fixed", "", "", "310000.00", "615", "", "midwest", "commercial_industrial", "45"),
)


def valid_tape_rows() -> list[dict[str, str]]:
    """A fresh copy of the hand-written, contract-valid loans, as dicts of strings (empty = missing)."""
    given = [dict(zip(REQUIRED_COLUMNS, loan, strict=True)) for loan in _VALID_LOANS]
    rows = [{name: row.get(name, "") for name in COLUMN_NAMES} for row in given]
    assert len({row["LoanId"] for row in rows}) == len(rows)
    return rows


def write_csv(rows: list[dict[str, str]], path: Path, columns: list[str] | None = None) -> Path:
    """Write ``rows`` as a CSV file with a header line (contract columns unless ``columns`` is given)."""
    fieldnames = list(columns or (rows[0].keys() if rows else COLUMN_NAMES))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(name="valid_tape_rows")
def valid_tape_rows_fixture() -> list[dict[str, str]]:
    """A fresh list of the hand-written valid loans (see ``valid_tape_rows_factory`` for wider scopes)."""
    return valid_tape_rows()


@pytest.fixture(scope="session")
def valid_tape_rows_factory():
    """The ``valid_tape_rows()`` helper itself, for module-scoped fixtures and Hypothesis tests."""
    return valid_tape_rows


@pytest.fixture(name="write_csv", scope="session")
def write_csv_fixture():
    """The ``write_csv(rows, path)`` helper."""
    return write_csv


def make_settings(data_home: Path, **overrides):
    """``StressSettings`` built from ``data_home`` and ``overrides`` only, ignoring any ``STRESS_*`` variable."""
    from pipelines.settings import StressSettings

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("STRESS_"):
                patch.delenv(name)
        return StressSettings(data_home=data_home, **overrides)


@pytest.fixture(name="make_settings", scope="session")
def make_settings_fixture():
    """The ``make_settings(data_home, **overrides)`` helper, for module-scoped fixtures."""
    return make_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings isolated from the environment: every store embedded under ``tmp_path/home``."""
    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield make_settings(tmp_path / "home")
    get_settings.cache_clear()


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {POSTGRES_TEST_URL} is not reachable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the shared ``test`` database (trust auth); fails under CI=true when unreachable, else skips."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_TEST_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as error:  # any failure to connect means "no server here"
        _postgres_unavailable(str(error))
    return POSTGRES_TEST_URL


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema in the ``test`` database for one test, dropped afterwards."""
    import psycopg

    schema = f"loanstress_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="session")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A dedicated database for this session (the loan store's table names are fixed), dropped at the end.

    Yields the SQLAlchemy URL of the loan store in that database.
    """
    import psycopg

    name = f"loanstress_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_SERVER_URL}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES_SERVER_URL}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _publish_snapshot(tape, as_of, settings, airflow_run_id: str | None = None) -> dict:
    """``validate_and_publish`` into the stores of ``settings`` (built by the composition root)."""
    from pipelines.composition import build_adapters
    from pipelines.data.snapshots import validate_and_publish

    adapters = build_adapters(settings)
    return validate_and_publish(
        tape, as_of, store=adapters.object_store, loan_store=adapters.loan_store,
        duplicate_tolerance=settings.duplicate_id_tolerance, balance_tolerance=settings.balance_over_amount_tolerance,
        work_dir=settings.data_home / "tmp" / (airflow_run_id or "direct"), airflow_run_id=airflow_run_id)


@pytest.fixture(name="publish_snapshot", scope="session")
def publish_snapshot_fixture():
    """The ``publish_snapshot(tape, as_of, settings, airflow_run_id)`` helper."""
    return _publish_snapshot
