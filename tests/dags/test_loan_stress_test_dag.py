"""End to end: the loan_stress_test DAG on a small synthetic tape with a few bad rows."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pytest

AS_OF = date(2025, 12, 31)


def test_loan_stress_test_end_to_end(airflow_db, dagbag, small_performance_history, stress_settings, tmp_path,
                                     monkeypatch):
    from pipelines.adapters.loan_store import LoanStore
    from pipelines.adapters.object_store import open_object_store
    from pipelines.adapters.results_store import ResultsStore
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.tasks.runs import read_run_steps, run_key

    book = generate_loan_book(400, seed=11, as_of=AS_OF)
    # Break three rows the way real tapes break: an inverted date, a negative amount, a duplicate id.
    loan_ids = book.column("LoanId").to_pylist()
    start = book.column("LoanStartDate").to_pylist()
    maturity = book.column("LoanMaturityDate").to_pylist()
    start[0], maturity[0] = maturity[0], start[0]
    book = book.set_column(book.schema.get_field_index("LoanStartDate"), "LoanStartDate", pa.array(start))
    book = book.set_column(book.schema.get_field_index("LoanMaturityDate"), "LoanMaturityDate", pa.array(maturity))
    amount = pc.cast(book.column("LoanAmount"), pa.float64()).to_pylist()
    amount[1] = -5.0
    loan_ids[2] = loan_ids[3]
    text = book.cast(pa.schema([pa.field(f.name, pa.string()) for f in book.schema]))
    amount_text = pa.array([f"{a:.2f}" for a in amount])
    text = text.set_column(text.schema.get_field_index("LoanAmount"), "LoanAmount", amount_text)
    text = text.set_column(0, "LoanId", pa.array(loan_ids))
    tape = str(tmp_path / "tape.csv")
    write_table(text, tape)

    # Trigger-form fields left at their defaults take the deployment's settings.
    from pipelines.settings import get_settings

    monkeypatch.setenv("STRESS_SEED", "7")
    monkeypatch.setenv("STRESS_N_PATHS", "500")
    get_settings.cache_clear()
    run = dagbag.get_dag("loan_stress_test").test(run_conf={"source_uri": tape, "as_of_date": AS_OF.isoformat()})

    assert str(run.state) == "success"
    store = open_object_store(stress_settings.resolved_object_store_uri)
    steps = read_run_steps(store, run.run_id)
    assert (steps["plan"]["seed"], steps["plan"]["n_paths"], steps["plan"]["horizon"]) == (7, 500, 9)
    model = steps["plan"]["pd_model"]  # a registered version that passed the gate, and the gate's reasons
    assert model["alias"] == "champion" and model["gate_decision"] == "promoted"
    assert model["flavour"] in {"macro_logistic", "xgboost"} and model["gate_reasons"] in model["note"]
    snapshot = steps["validate"]
    assert snapshot["input_rows"] == 400
    assert snapshot["accepted_rows"] + snapshot["quarantined_rows"] == 400
    assert snapshot["quarantine_reasons"]["start_before_maturity"] == 1
    assert snapshot["quarantine_reasons"]["range:LoanAmount"] == 1
    assert snapshot["quarantine_reasons"]["duplicate_LoanId"] == 2
    assert snapshot["accepted_rows"] == 396
    assert snapshot["airflow_run_id"] == run.run_id
    assert LoanStore(stress_settings.resolved_loan_store_url).count_rows(snapshot["ingestion_id"]) == (396, 4)
    features = store.get_parquet(steps["features"]["features_key"])
    assert features.num_rows == 396
    assert steps["features"]["macro_quarter"] == "2025Q4"
    assert_compliance_metrics_and_report(run.run_id, steps, stress_settings)

    # Published after the checks, every scenario; the teardown removed staging and batch partials.
    results = ResultsStore(stress_settings.resolved_loan_store_url)
    published = results.simulations_of_run(run.run_id)
    assert sorted(r["SimulationId"] for r in published) == sorted(steps["publish"]["simulation_ids"])
    assert len(published) == len(steps["plan"]["scenarios"])
    for result in published:
        check = result["metrics"]["self_check"]
        assert check["passed"] and abs(check["z"]) <= check["max_abs_z"] == 4
    assert results.run_status(run.run_id, "loan_stress_test")["status"] == "succeeded"
    assert store.list_keys(f"staging/{run_key(run.run_id)}/") == []
    assert store.list_keys(f"runs/{run_key(run.run_id)}/simulation/") == []
    assert steps["teardown"]["status"] == "succeeded"
    # The run's Prometheus exposition, written by the teardown from what the run recorded.
    from prometheus_client.parser import text_string_to_metric_families

    exposition = store.get_bytes(f"runs/{run_key(run.run_id)}/metrics.prom").decode()
    samples = [s for family in text_string_to_metric_families(exposition) for s in family.samples]
    assert {s.labels["stage"]: s.value for s in samples if s.name == "loanstress_loans"} == {
        "ingested": 400, "accepted": 396, "quarantined": 4}
    assert [s.labels["runner"] for s in samples if s.name == "loanstress_simulation_seconds"] == ["local"]
    assert {s.labels["scenario"] for s in samples if s.name == "loanstress_scenario_loss_rate"} == set(
        steps["plan"]["scenarios"])
    # The allocation under the severely adverse scenario: every strategy has an outcome, the report shows it.
    optimised = steps["optimise"]
    assert optimised["status"] == "done" and optimised["scenario_id"] == "2026_severely_adverse"
    optimisation = json.loads(store.get_bytes(optimised["allocation_key"]))
    assert optimisation["recommended_strategy"] == optimised["recommended_strategy"]
    assert set(optimisation["strategies"]) >= {"min_cvar", "max_return", "max_raroc", "risk_parity"}
    report = store.get_bytes(f"runs/{run_key(run.run_id)}/report/stress_test_report.html").decode()
    assert "<h2>Recommended allocation</h2>" in report


def test_trigger_form_defaults_validate(dagbag):
    """Every DAG can be triggered with its defaults: optional params are nullable with a null default."""
    for dag_id, dag in dagbag.dags.items():
        dag.params.validate()  # raises ParamValidationError when a default breaks its own schema
        for name, param in dag.params.items():
            if "empty" in (param.description or "").lower():
                assert param.value is None and "null" in param.schema["type"], f"{dag_id}.{name}"


def test_a_missing_tape_fails_at_once_and_publishes_nothing(airflow_db, dagbag, stress_settings, tmp_path):
    """A wrong path is not retried (it would hold the run slot for minutes) and leaves nothing published."""
    from pipelines.adapters.results_store import ResultsStore

    dag = dagbag.get_dag("loan_stress_test")
    run = dag.test(run_conf={"source_uri": str(tmp_path / "missing.csv"), "as_of_date": AS_OF.isoformat()})
    assert str(run.state) == "failed"
    states = {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    assert states["loan_tape.ingest"] == ("failed", 1)
    results = ResultsStore(stress_settings.resolved_loan_store_url)
    assert results.simulations_of_run(run.run_id) == []
    assert results.run_status(run.run_id, "loan_stress_test")["status"] == "failed_nothing_published"


def assert_compliance_metrics_and_report(run_id: str, steps: dict, settings) -> None:
    """The run judged its results against the rules, published them and wrote its report."""
    from pipelines.adapters.metrics_sink import LocalMetricsSink, records_to_datapoints
    from pipelines.adapters.object_store import open_object_store
    from pipelines.adapters.results_store import ResultsStore
    from pipelines.compliance.rules import MONITORING_DAG_ID, Status, status_counts
    from pipelines.tasks.runs import run_key

    records = ResultsStore(settings.resolved_loan_store_url).compliance_of_run(run_id)
    assert steps["compliance"]["status"] == status_counts(records)
    stored = open_object_store(settings.resolved_object_store_uri).get_bytes(steps["compliance"]["records_key"])
    assert [r.to_dict() for r in records] == json.loads(stored)
    scenarios = steps["plan"]["scenarios"]
    cet1 = {r.scenario: r for r in records if r.metric_id == "CET1_MIN_RATIO"}
    assert sorted(cet1) == sorted(scenarios)
    for scenario, record in cet1.items():
        assert record.actual == steps[f"result_{scenario}"]["metrics"]["capital"]["min_cet1_ratio"]
        assert record.threshold == pytest.approx(0.045 + settings.stress_capital_buffer)
        assert record.status is (Status.COMPLIANT if record.actual >= record.threshold else Status.NON_COMPLIANT)
    (quality,) = [r for r in records if r.metric_id == "DATA_QUALITY_PASS_RATE"]
    assert (quality.actual, quality.status) == (396 / 400, Status.COMPLIANT)
    model_records = [r for r in records if r.scope.value == "model"]
    assert model_records and {r.model_version for r in model_records} == {steps["plan"]["pd_model"]["version"]}
    for record in model_records:  # evidence comes from a monitoring run, or the record says it is missing
        if record.actual is None:
            assert record.status is Status.NOT_EVALUATED and record.note
        else:
            assert record.note.startswith(f"from {MONITORING_DAG_ID} run ")

    published = steps["metrics"]
    assert published["datapoints"] == len(records_to_datapoints(records)) and published["alarms"] > 0
    sink = LocalMetricsSink(settings.resolved_loan_store_url, settings.cloudwatch_namespace)
    for scenario, record in cet1.items():
        assert sink.values("CET1_MIN_RATIO", {"Run": run_id, "Scenario": scenario}) == [record.actual]

    store = open_object_store(settings.resolved_object_store_uri)
    prefix = f"runs/{run_key(run_id)}/report"
    report = steps["report"]["report"]
    pdf_key = f"{prefix}/stress_test_report.pdf"
    assert (report["pdf"]["key"], report["pdf"]["uri"]) == (pdf_key, store.uri(pdf_key))
    pdf = store.get_bytes(f"{prefix}/stress_test_report.pdf")
    assert pdf.startswith(b"%PDF-") and report["pdf"]["pages"] >= 7
    html = store.get_bytes(f"{prefix}/stress_test_report.html").decode()
    assert steps["validate"]["content_sha256"] in html
    assert all(f"<td>{r.metric_id}</td>" in html for r in records)


def test_a_run_without_logical_date_uses_the_time_it_was_due(airflow_db, small_performance_history,
                                                              stress_settings, tmp_path):
    """The REST API accepts ``logical_date: null``; with no as-of date either, the tape is as of ``run_after``.

    A DAG object of its own: ``dag.test(run_conf=...)`` leaves the conf of earlier runs in the params
    of the DAG object it ran on.
    """
    from datetime import UTC, datetime

    from airflow.dag_processing.dagbag import DagBag

    from pipelines.adapters.object_store import open_object_store
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.settings import REPO_ROOT
    from pipelines.tasks.runs import read_run_steps

    tape = str(tmp_path / "tape.csv")
    write_table(generate_loan_book(200, seed=3, as_of=AS_OF), tape)
    due = datetime(2026, 1, 2, 6, 0, tzinfo=UTC)
    run = DagBag(str(REPO_ROOT / "dags")).get_dag("loan_stress_test").test(
        logical_date=None, run_after=due,
        run_conf={"source_uri": tape, "scenarios": ["2026_baseline"], "n_paths": 100})
    assert str(run.state) == "success"
    assert run.logical_date is None
    steps = read_run_steps(open_object_store(stress_settings.resolved_object_store_uri), run.run_id)
    assert steps["validate"]["as_of"] == "2026-01-02"


def test_a_second_run_attributes_its_change_to_what_changed(airflow_db, dagbag, small_performance_history,
                                                            stress_settings, tmp_path):
    """Two runs on the same tape, the second with another seed: the first has no previous run; in the second
    the analytic expected loss and the capital path do not move, and the VaR's change is all in the parameters."""
    from pipelines.adapters.object_store import open_object_store
    from pipelines.adapters.results_store import ResultsStore
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.tasks.runs import read_run_steps, run_key

    tape = str(tmp_path / "tape.parquet")
    write_table(generate_loan_book(300, seed=12, as_of=AS_OF), tape)
    dag = dagbag.get_dag("loan_stress_test")
    conf = {"source_uri": tape, "as_of_date": AS_OF.isoformat(), "scenarios": ["2026_severely_adverse"],
            "n_paths": 200}
    first = dag.test(run_conf=conf | {"seed": 1})
    second = dag.test(run_conf=conf | {"seed": 2})
    assert str(first.state) == str(second.state) == "success"
    store = open_object_store(stress_settings.resolved_object_store_uri)
    first_steps, second_steps = read_run_steps(store, first.run_id), read_run_steps(store, second.run_id)
    assert first_steps["attribution"]["previous_run_id"] is None
    attribution = second_steps["attribution"]
    assert attribution["previous_run_id"] == first.run_id
    scenario = attribution["scenarios"]["2026_severely_adverse"]
    assert scenario["changed"] == ["parameters"]
    for metric in ("expected_loss", "min_cet1_ratio"):
        assert scenario[metric]["change"] == 0.0 and set(scenario[metric]["bars"].values()) == {0.0}
    var = scenario["var_999"]
    assert var["change"] != 0.0 and var["bars"]["parameters"] == pytest.approx(var["change"], rel=1e-9)
    assert sum(var["bars"].values()) == pytest.approx(var["change"], rel=1e-12)
    rows = ResultsStore(stress_settings.resolved_loan_store_url).attribution_of_run(second.run_id, "loan_stress_test")
    assert [r["step"] for r in rows if r["metric"] == "var_999"] == [
        "previous", "data", "model", "scenario", "parameters", "residual", "current"]
    saved = json.loads(store.get_bytes(attribution["attribution_key"]))
    assert saved["scenarios"] == attribution["scenarios"]
    html = store.get_bytes(f"runs/{run_key(second.run_id)}/report/stress_test_report.html").decode()
    assert "Change since the previous run" in html and first.run_id in html
    # A third run with the second's inputs: the same SimulationId, whose result row it replaces; the
    # attribution still compares with the second run (from its published-run record) and finds no change.
    third = dag.test(run_conf=conf | {"seed": 2})
    assert str(third.state) == "success"
    repeated = read_run_steps(store, third.run_id)["attribution"]
    assert repeated["previous_run_id"] == second.run_id
    unchanged = repeated["scenarios"]["2026_severely_adverse"]
    assert unchanged["changed"] == []
    assert all(set(unchanged[m]["bars"].values()) == {0.0} for m in ("expected_loss", "var_999", "min_cet1_ratio"))
