"""End to end: the pd_model_training DAG on a small synthetic history, through MLflow to the deploy step."""

from __future__ import annotations


def test_pd_model_training_end_to_end(airflow_db, dagbag, stress_settings, tmp_path, monkeypatch):
    """Seeded history, one thread: the outcome of the gate is fixed, and asserted."""
    from pipelines.adapters.model_registry import CHALLENGER, CHAMPION, connect
    from pipelines.composition import current_adapters
    from pipelines.data.synthetic import generate_performance_history
    from pipelines.settings import get_settings
    from pipelines.tasks.runs import read_run_steps

    monkeypatch.setenv("STRESS_PD_TRAINING_THREADS", "1")
    get_settings.cache_clear()
    history = tmp_path / "performance_history.parquet"
    generate_performance_history(2000, seed=17).to_parquet(history)

    dag = dagbag.get_dag("pd_model_training")
    run = dag.test(run_conf={"history_source_uri": str(history), "holdout_quarters": 8, "search_budget": 2})

    assert str(run.state) == "success"
    steps = read_run_steps(current_adapters().object_store, run.run_id)
    assert steps["pd_ingest_history"]["provenance"]["source"] == str(history)
    assert steps["pd_validate_history"]["rejected_rows"] == 0
    assert steps["pd_split"]["test_quarters"] == ["2023Q1", "2024Q4"]
    assert len(steps["pd_train"]["search_cv_auc"]) == 2
    metrics = steps["pd_evaluate"]["metrics"]
    assert set(metrics) == {"xgboost", "benchmark_logistic", "true_pd"}
    assert all(0.5 < m["auc"] < 1 for m in metrics.values())

    registered, decision, deployed = steps["pd_register"], steps["pd_promotion"], steps["pd_deploy"]
    client = connect(get_settings().resolved_mlflow_tracking_uri)
    name = registered["model_name"]
    version = client.get_model_version(name, registered["version"])
    assert CHALLENGER in version.aliases
    assert version.tags["airflow_run_id"] == run.run_id
    assert version.tags["promotion.decision"] == ("promoted" if decision["promoted"] else "rejected")
    assert version.tags["promotion.incumbent"].startswith("benchmark_logistic")  # no champion before this run
    assert (CHAMPION in version.aliases) == decision["promoted"]
    artifacts = {a.path for a in client.list_artifacts(registered["mlflow_run_id"], "report")}
    assert {f"report/{f}" for f in ("model_card.md", "roc.png", "calibration.png", "feature_importance.png",
                                    "shap_summary.png", "evaluation.json")} <= artifacts
    # the model card in MLflow: a described registered model, a run spanning the training, artifacts in data home
    assert "promotion gate" in client.get_registered_model(name).description
    mlflow_run = client.get_run(registered["mlflow_run_id"])
    assert mlflow_run.info.start_time == steps["pd_ingest_history"]["provenance"]["started_at_ms"]
    data_home = get_settings().data_home.resolve().as_uri()
    assert client.get_experiment("0").artifact_location.startswith(data_home)  # the Default experiment too
    assert client.get_experiment(mlflow_run.info.experiment_id).artifact_location.startswith(data_home)
    assert deployed["target"] == "local"
    assert deployed["serving_uri"].endswith("/invocations")
    assert deployed["champion_version"] == (registered["version"] if decision["promoted"] else None)
