"""End to end: the pd_model_training DAG on a small synthetic history, through MLflow to the deploy step."""

from __future__ import annotations

from pathlib import Path


def test_pd_model_training_end_to_end(airflow_db, dagbag, stress_settings, tmp_path, monkeypatch):
    """Seeded history, one thread: the outcome of the gate is fixed, and asserted."""
    from pipelines.adapters.model_registry import connect
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

    registered, gate, deployed = steps["pd_register"], steps["pd_promotion"], steps["pd_deploy"]
    client = connect(get_settings().resolved_mlflow_tracking_uri)
    name = registered["model_name"]
    benchmark, xgboost = registered["candidates"]
    assert (benchmark["candidate"], benchmark["flavour"]) == ("benchmark_logistic", "macro_logistic")
    assert (xgboost["candidate"], xgboost["flavour"]) == ("xgboost", "xgboost")
    first, second = gate["decisions"]
    # the benchmark is judged first, with no champion yet, on calibration alone; XGBoost then has to beat it
    assert first["incumbent"] == "none" and first["promote"]
    assert second["incumbent"] == f"champion v{benchmark['version']}"
    assert gate["champion"]["version"] == (xgboost if second["promote"] else benchmark)["version"]
    for candidate, decision in zip(registered["candidates"], gate["decisions"], strict=True):
        version = client.get_model_version(name, candidate["version"])
        assert version.tags["airflow_run_id"] == run.run_id
        assert version.tags["model_flavour"] == candidate["flavour"]
        assert version.tags["oot_start_quarter"] == "2023Q1"
        assert version.tags["promotion.decision"] == ("promoted" if decision["promote"] else "rejected")
        artifacts = {a.path for a in client.list_artifacts(candidate["mlflow_run_id"], "report")}
        assert {f"report/{f}" for f in ("model_card.md", "roc.png", "calibration.png", "shap_summary.png",
                                        "evaluation.json")} <= artifacts
        card = Path(client.download_artifacts(candidate["mlflow_run_id"], "report/model_card.md", str(tmp_path)))
        text = card.read_text()
        verdict = "PROMOTED to champion" if decision["promote"] else "NOT promoted"
        assert f"{verdict} against {decision['incumbent']}" in text  # the card written after the gate
        assert "(this version)" in text and "True PD (generator)" in text and "Hanley and McNeil" in text
        assert steps["pd_ingest_history"]["provenance"]["data_sha256"] in text and run.run_id in text
        assert f"git commit `{steps['pd_ingest_history']['provenance']['code_version']}`" in text
        assert verdict in version.description and "Hanley-McNeil" in version.description
        # the run spans the training, not its logging step
        mlflow_run = client.get_run(candidate["mlflow_run_id"])
        assert mlflow_run.info.start_time == steps["pd_ingest_history"]["provenance"]["started_at_ms"]
    assert "monotone constraints (tree splits): CurrentLTV (+)" in Path(client.download_artifacts(
        xgboost["mlflow_run_id"], "report/model_card.md", str(tmp_path / "x"))).read_text()
    assert "xgboost" in client.get_registered_model(name).description
    assert "promotion gate" in client.get_registered_model(name).description
    data_home = get_settings().data_home.resolve().as_uri()
    assert client.get_experiment("0").artifact_location.startswith(data_home)  # the Default experiment too
    assert client.get_experiment(mlflow_run.info.experiment_id).artifact_location.startswith(data_home)
    assert deployed["target"] == "local"
    assert deployed["serving_uri"].endswith("/invocations")
    assert deployed["champion_version"] == gate["champion"]["version"]
