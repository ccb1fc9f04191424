"""End to end: two daily portfolio_monitoring runs, the second on a book whose credit scores fell."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pytest

AS_OF = date(2025, 12, 31)
SCORE_DROP = 120  # points off every credit score of the second day's book


def write_tape(path, seed: int, score_drop: int = 0) -> str:
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book

    book = generate_loan_book(300, seed=seed, as_of=AS_OF)
    if score_drop:
        index = book.schema.get_field_index("CreditScore")
        lowered = pc.max_element_wise(pc.subtract(book.column(index).cast(pa.int32()), score_drop), 300)
        book = book.set_column(index, "CreditScore", lowered.cast(book.schema.field(index).type))
    write_table(book, str(path))
    return str(path)


def test_every_task_of_the_new_dags_reports_its_failure(dagbag):
    from pipelines.compliance.rules import MONITORING_DAG_ID
    from pipelines.tasks.policy import on_task_failure

    assert MONITORING_DAG_ID in dagbag.dags
    for dag_id in ("loan_stress_test", MONITORING_DAG_ID):
        for task in dagbag.dags[dag_id].tasks:
            callbacks = task.on_failure_callback  # a list, or the bare function on a mapped task
            assert (callbacks if isinstance(callbacks, list) else [callbacks]) == [on_task_failure], task.task_id


def test_portfolio_monitoring_end_to_end(airflow_db, dagbag, small_performance_history, stress_settings, tmp_path):
    from pipelines.adapters.metrics_sink import LocalMetricsSink
    from pipelines.adapters.object_store import open_object_store
    from pipelines.adapters.results_store import ResultsStore
    from pipelines.compliance.rules import DRIFT_FEATURES, Status
    from pipelines.tasks.runs import read_run_steps

    dag = dagbag.get_dag("portfolio_monitoring")
    conf = {"as_of_date": AS_OF.isoformat()}
    first = dag.test(run_conf={**conf, "source_uri": write_tape(tmp_path / "day1.csv", seed=31)})
    assert str(first.state) == "success"
    store = open_object_store(stress_settings.resolved_object_store_uri)
    steps = read_run_steps(store, first.run_id)
    snapshot, score, backtest, drift = steps["validate"], steps["score"], steps["backtest"], steps["drift"]
    assert score["rows"] == snapshot["accepted_rows"] > 0
    assert score["model"]["alias"] == "champion"  # the registry pd_model_training trained on this history
    assert score["model"]["note"].startswith("the promotion gate's champion: gate promoted against")
    scores = store.get_parquet(score["scores_key"]).to_pandas()
    assert len(scores) == score["rows"] and scores["QuarterlyPD"].between(0, 1).all()
    assert scores["QuarterlyPD"].mean() == pytest.approx(score["mean_quarterly_pd"])
    assert backtest["defaults"] > 0 and 0.5 < backtest["auc"] < 1
    assert backtest["history_source"] == str(small_performance_history)
    # out of time: only quarters from the first one after the version's training window and embargo
    assert not backtest["in_sample"] and backtest["oot_start_quarter"] == score["model"]["oot_start_quarter"]
    assert backtest["window"] == "2025Q1..2025Q4" and backtest["note"].startswith("out of time (from 2023Q1")
    assert drift["reference"] is None and drift["score_psi"] is None

    results = ResultsStore(stress_settings.resolved_loan_store_url)
    records = {(r.metric_id, r.feature): r for r in results.compliance_of_run(first.run_id)}
    assert {r.scope.value for r in records.values()} == {"data", "model"}  # no scenarios in a monitoring run
    assert records[("DATA_QUALITY_PASS_RATE", None)].actual == snapshot["accepted_rows"] / snapshot["input_rows"]
    assert records[("PD_MODEL_AUC", None)].actual == backtest["auc"]
    assert records[("PD_MODEL_AUC", None)].note.startswith("out of time")  # the record says what its AUC is
    assert records[("PD_MODEL_CALIBRATION", None)].actual == backtest["calibrated_band_share"]
    for feature in (None, *DRIFT_FEATURES):
        metric_id = "PD_SCORE_PSI" if feature is None else "PD_FEATURE_PSI"
        assert records[(metric_id, feature)].status is Status.NOT_EVALUATED
        assert records[(metric_id, feature)].note == drift["note"]

    second = dag.test(run_conf={**conf, "source_uri": write_tape(tmp_path / "day2.csv", seed=32,
                                                                  score_drop=SCORE_DROP)})
    assert str(second.state) == "success" and second.run_id != first.run_id
    drift = read_run_steps(store, second.run_id)["drift"]
    assert drift["reference"]["snapshot_id"] == snapshot["snapshot_id"]
    assert drift["reference"]["run_id"] == first.run_id
    assert drift["feature_psi"]["CreditScore"] > 0.25  # a 120-point fall is a major shift
    records = {(r.metric_id, r.feature): r for r in results.compliance_of_run(second.run_id)}
    credit = records[("PD_FEATURE_PSI", "CreditScore")]
    assert (credit.actual, credit.status) == (drift["feature_psi"]["CreditScore"], Status.NON_COMPLIANT)
    assert records[("PD_SCORE_PSI", None)].actual == drift["score_psi"]

    sink = LocalMetricsSink(stress_settings.resolved_loan_store_url, stress_settings.cloudwatch_namespace)
    assert sink.values("PD_FEATURE_PSI", {"Run": second.run_id, "Feature": "CreditScore"}) == [credit.actual]
    assert f"{stress_settings.cloudwatch_namespace}-PD_FEATURE_PSI-CreditScore" in sink.alarm_names()
