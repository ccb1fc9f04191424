"""A simulation requested through the services runs the real loan_stress_test DAG in a process of its own."""

from __future__ import annotations

import time
from datetime import date

POLL_SECONDS = 2
GIVE_UP_SECONDS = 1200  # a guard against a hung run, not a measure of speed


def test_run_simulation_starts_a_real_run_and_returns_its_results(airflow_db, small_performance_history,
                                                                  stress_settings, tmp_path, monkeypatch):
    from pipelines.composition import current_adapters
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.services.application import get_simulation, list_runs, run_simulation

    tape = tmp_path / "tape.csv"
    write_table(generate_loan_book(300, seed=3, as_of=date(2025, 12, 31)), str(tape))
    monkeypatch.setenv("STRESS_LOAN_TAPE_URI", str(tape))
    # The request leaves paths, horizon and seed unset: the run's plan takes the deployment's settings.
    monkeypatch.setenv("STRESS_N_PATHS", "200")
    monkeypatch.setenv("STRESS_SEED", "11")
    monkeypatch.setenv("STRESS_HORIZON_QUARTERS", "4")
    from pipelines.settings import get_settings

    get_settings.cache_clear()
    adapters = current_adapters()
    started = run_simulation(adapters, "Rates +200 bp on the 2026 baseline", "0.02", requested_by="tester",
                             as_of_date="2025-12-31")
    assert started["status"] == "queued" and started["simulation_id"].startswith("svc__")
    deadline = time.monotonic() + GIVE_UP_SECONDS
    view = get_simulation(adapters, started["simulation_id"], page_size=50)
    while view["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        view = get_simulation(adapters, started["simulation_id"], page_size=50)
    assert view["status"] == "succeeded", view["error"]
    (result,) = view["results"]
    assert result["ScenarioId"] == "2026_baseline_rates_+200bp"
    assert result["AirflowRunId"] == view["airflow_run_id"]
    assert len(result["AffectedLoans"]) == 50 and view["next_page_token"] == "50"
    stored = adapters.results_store.simulations_of_run(view["airflow_run_id"])[0]
    assert result["SimulationId"] == stored["SimulationId"]
    assert (stored["provenance"]["n_paths"], stored["provenance"]["seed"], stored["provenance"]["horizon"]) == \
        (200, 11, 4)
    assert result["OverallImpact"] == f"{stored['OverallImpact']:.2f}"
    last = get_simulation(adapters, started["simulation_id"], page_size=50, page_token="250")
    assert last["next_page_token"] == "" and 0 < len(last["results"][0]["AffectedLoans"]) <= 50
    assert list_runs(adapters)[0]["airflow_run_id"] == view["airflow_run_id"]
