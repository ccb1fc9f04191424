"""Monthly (and on every new performance history) training of the PD model.

Ingest the loan performance history, validate it with GX, build the point-in-time 12-month default
dataset, split out of time, train the benchmark logistic model and the XGBoost model on the same
rows, evaluate both, log and register both in MLflow (``challenger``), run the promotion gate over
them, benchmark first (``champion`` only for a calibrated version that beats the incumbent on the
same out-of-time data; docs/model_governance.md), and deploy the champion.

The deploy step has one branch per serving target and ``STRESS_MODEL_SERVING`` (``sagemaker`` by
default on ``STRESS_TARGET=aws``) picks one at run time (``choose_serving``), so the DAG's shape is the
same on both: ``serve_locally`` records the URI of ``make serve-model``; the ``sagemaker`` group creates
the model and endpoint config and creates or updates the endpoint with the Amazon provider's operators
(``pipelines/tasks/sagemaker.py``, ``docs/deployment.md``).

Schedule: ``AssetOrTimeSchedule`` = the 1st of every month at 03:00 UTC *or* whenever the
``loan_performance_history`` asset gets an event (the process that lands a new history at
``STRESS_PERFORMANCE_HISTORY_URI`` emits it, e.g. through the REST API), so a new history is used
at once and a quiet month still re-trains on the latest data. Wiring only: each task is one call
into ``pipelines.tasks.training``; heavy libraries load inside the tasks. See ``docs/pd_model.md``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, chain, dag, task

from pipelines.tasks.policy import DEFAULT_ARGS
from pipelines.tasks.sagemaker import sagemaker_deployment

PERFORMANCE_HISTORY = Asset(name="loan_performance_history", uri="file://loanstress/loan_performance_history")


@dag(
    dag_id="pd_model_training",
    description="Train, evaluate, register, gate and deploy the XGBoost PD model (MLflow, SageMaker).",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 1 * *", timezone="UTC"),
                                 assets=[PERFORMANCE_HISTORY]),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["pd-model", "credit-risk", "mlops"],
    params={
        "history_source_uri": Param(None, type=["null", "string"], title="Performance history",
                                    description="Parquet/CSV path or file:// / s3:// URI. Empty: the configured "
                                                "history (STRESS_PERFORMANCE_HISTORY_URI; on embedded defaults a "
                                                "seeded synthetic one)."),
        "holdout_quarters": Param(0, type="integer", minimum=0, maximum=40, title="Out-of-time quarters",
                                  description="Latest observation quarters held out; 0: STRESS_PD_HOLDOUT_QUARTERS."),
        "search_budget": Param(0, type="integer", minimum=0, maximum=16, title="Search budget",
                               description="Hyper-parameter candidates; 0: STRESS_PD_SEARCH_CANDIDATES."),
    },
    doc_md=__doc__,
)
def pd_model_training() -> None:
    @task
    def ingest_history(params: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.ingest_history(params["history_source_uri"], run_id)

    @task
    def validate_history(ingested: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.validate_history(ingested, run_id)

    @task
    def build_dataset(validated: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.build_dataset(validated, run_id)

    @task
    def split(dataset: dict, params: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.split(dataset, params["holdout_quarters"], run_id)

    @task
    def train(split_result: dict, params: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.train(split_result, params["search_budget"], run_id)

    @task
    def evaluate(split_result: dict, trained: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.evaluate(split_result, trained, run_id)

    @task
    def register(trained: dict, evaluated: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.register(trained, evaluated, run_id)

    @task
    def promotion_gate(registered: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.promotion_gate(registered, run_id)

    @task.branch
    def choose_serving() -> str:
        from pipelines.tasks.training import model_serving

        return {"local": "serve_locally", "sagemaker": "sagemaker.deployment_plan"}[model_serving()]

    @task
    def serve_locally(decision: dict, run_id: str) -> dict:
        from pipelines.tasks import training

        return training.serve_locally(decision, run_id)

    split_result = split(build_dataset(validate_history(ingest_history())))
    trained = train(split_result)
    decision = promotion_gate(register(trained, evaluate(split_result, trained)))
    serving = choose_serving()
    chain(decision, serving, serve_locally(decision))
    sagemaker_deployment(decision, serving)


pd_model_training()
