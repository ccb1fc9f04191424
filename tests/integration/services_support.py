"""Stores and published results shared by the services' tests (application layer, gRPC, REST).

``adapters`` builds the composition root's adapters on embedded stores or on PostgreSQL (a database
of the test's own) and Redis (a key prefix of the test's own), failing under CI=true when either is
unreachable; results and compliance records are published from hand-built documents whose figures
are known.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.compliance.rules import ComplianceRecord, Direction, Scope, Severity, Status
from pipelines.engine.drilldown import write_loan_results

AS_OF = date(2025, 12, 31)
REDIS_URL = "redis://127.0.0.1:6379/0"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


def redis_or_fail() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as error:  # any failure to connect means "no server here"
        message = f"Redis at {REDIS_URL} is not reachable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def fresh_postgres_database_fixture(postgres_url: str):
    """A PostgreSQL database of this test's own (the store's table names are fixed), dropped afterwards."""
    import psycopg

    from tests.conftest import POSTGRES_SERVER_URL

    name = f"loanstress_services_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_SERVER_URL}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(f"{POSTGRES_SERVER_URL}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def adapters_fixture(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The composition root's adapters on embedded stores, or on PostgreSQL and Redis."""
    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path / "home"))
    prefix = f"loanstress-test-{uuid.uuid4().hex}:"
    if request.param == "postgres_redis":
        redis_or_fail()
        monkeypatch.setenv("STRESS_LOAN_STORE_URL", request.getfixturevalue("fresh_postgres_database"))
        monkeypatch.setenv("STRESS_REDIS_URL", REDIS_URL)
        monkeypatch.setenv("STRESS_CACHE_PREFIX", prefix)
    get_settings.cache_clear()
    built = current_adapters()
    yield built
    if request.param == "postgres_redis":
        built.cache.invalidate()  # removes every key under this test's prefix
        built.loan_store.engine.dispose()
        built.results_store.engine.dispose()
        built.service_store.engine.dispose()
    get_settings.cache_clear()


def ingest_tape(rows: list[dict[str, str]], tmp_path: Path, write_csv, name: str) -> dict:
    """The DAG's ingest and validate task bodies (which apply pending amendments) on ``rows``."""
    from pipelines.tasks.loan_tape import ingest, validate

    run_id = f"manual__{name}"
    return validate(ingest(str(write_csv(rows, tmp_path / f"{name}.csv")), AS_OF.isoformat(), run_id), run_id)


def publish_known_results(adapters, run_id: str = RUN_ID) -> dict:
    """One scenario's result with known figures and three affected loans, published as a run does."""
    # As the reduce step writes it, one loan per row group: a lookup must pick the right one.
    uri = write_loan_results(adapters.object_store, f"runs/{uuid.uuid4().hex}/affected_loans.parquet", pa.table({
        "LoanId": ["A-1", "B-2", "C-3"], "ProductSegment": ["auto", "auto", "heloc"],
        "ProjectedDefaultRisk": [0.125, 0.0625, 0.5], "ProjectedBalance": [1000.0, 2000.5, 300.25],
        "ExpectedLoss": [50.0, 25.0, 60.0],
        "QuarterlyPD": pa.FixedSizeListArray.from_arrays(pa.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06],
                                                                   pa.float32()), 2),
        "QuarterlyBalance": pa.FixedSizeListArray.from_arrays(
            pa.array([1500.0, 1000.0, 2500.25, 2000.5, 310.0, 300.25]), 2)}), rows_per_group=1)
    result = {
        "SimulationId": f"SIM-{uuid.uuid4().hex[:16]}", "ScenarioDescription": "Severely adverse",
        "InterestRateScenario": -0.0275, "StartDate": "2026-01-01", "EndDate": "2026-06-30",
        "AffectedLoans": uri, "OverallImpact": 135.0,
        "metrics": {"scenario_id": "2026_severely_adverse", "loans": 3, "exposure": 3300.75, "loss_rate": 0.0409,
                    "var": {"0.999": 900.5}, "expected_shortfall": {"0.990": 700.25},
                    "capital": {"min_cet1_ratio": 0.101},
                    "exposure_by_segment": {"auto": 3000.5, "heloc": 300.25},
                    "loss_by_segment": {"auto": 75.0, "heloc": 60.0},
                    "loss_rate_by_segment": {"auto": 0.025, "heloc": 0.2}},
        "provenance": {"snapshot_id": "snap-1", "airflow_run_id": run_id},
    }
    adapters.results_store.publish_simulations([result], run_id)
    adapters.cache.invalidate()
    return result


def record(run_id: str, status: Status, actual: float, scenario: str, minute: int) -> ComplianceRecord:
    return ComplianceRecord(metric_id="CET1_MIN", metric_name="Minimum CET1 ratio after stress", threshold=0.07,
                            actual=actual, status=status, run_id=run_id, dag_id="loan_stress_test",
                            metric="min_cet1_ratio", scope=Scope.SCENARIO, direction=Direction.MIN,
                            severity=Severity.CRITICAL, scenario=scenario,
                            evaluated_at=datetime(2026, 1, 1, 0, minute, tzinfo=UTC))




def publish_known_allocation(adapters, run_id: str = RUN_ID) -> dict:
    """The optimise step's document of a two-segment book whose optimum is known by hand, kept as the task does.

    Both segments lose the same on every path, so only the return tells them apart: over the two
    quarters auto earns half its 8 % margin less 4 % EL (0 per dollar), heloc half of 5 % less 4 %
    (-1.5 cents). With the whole budget of 250 to lend and each segment between 70 and 130 (30 %
    run-off and growth bounds on 100 each), max_return grows auto to its bound (130) and gives heloc
    the rest (120): the return changes by 30 x 0 + 20 x -0.015 = -0.30, and a dollar more of auto's
    bound, or a dollar less to lend, is worth 0.015 (heloc's loss avoided); heloc's bounds do not bind.
    """
    import json
    from dataclasses import replace

    import numpy as np

    from models.optimisation import Assets, Limits, Strategy
    from pipelines.engine.allocation import recommend
    from pipelines.engine.optimisation_inputs import OptimisationInputs, load_appetite
    from pipelines.settings import REPO_ROOT
    from pipelines.tasks.runs import allocation_key

    losses = np.array([[0.01, 0.01], [0.02, 0.02], [0.03, 0.03], [0.10, 0.10]])
    assets = Assets(names=("auto", "heloc"), segments=("auto", "heloc"), path_losses=losses,
                    expected_loss=np.array([0.04, 0.04]), net_interest_margin=np.array([0.08, 0.05]),
                    fee_rate=np.zeros(2), cost_rate=np.zeros(2), rwa_density=np.ones(2),
                    current=np.array([100.0, 100.0]), quarterly_stressed_loss=np.full((2, 2), 0.02),
                    start_allowance=np.array([0.01, 0.01]))
    limits = Limits(budget=250.0, max_growth=0.3, max_runoff=0.3, cvar_level=0.75)
    appetite = replace(load_appetite(REPO_ROOT / "risk_appetite" / "lending.yaml"), strategy=Strategy.MAX_RETURN,
                       frontier_points=3)
    document = {"status": "done", "baseline_scenario": "2026_baseline",
                **recommend(OptimisationInputs("2026_severely_adverse", assets, limits, 0.0), appetite)}
    adapters.object_store.put_bytes(allocation_key(run_id), json.dumps(document).encode())
    return document
