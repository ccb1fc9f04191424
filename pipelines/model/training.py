"""Training and evaluation of the XGBoost PD model on a loan performance history.

Path of the data, one step per task of ``pd_model_training`` (:mod:`pipelines.tasks.training`;
intermediate tables go through the object store under ``runs/<run>/pd_model/``, XCom carries small
dicts):

1. **ingest**: the history named by the run (Parquet or CSV; path, ``file://`` or ``s3://``) or the
   configured one (:func:`pipelines.model.selection.performance_history`: on embedded defaults a seeded
   synthetic history generated once into ``data_home/inputs/performance_history.parquet``), with
   the SHA-256 of its content as the data snapshot id;
2. **validate** with GX against the suite :func:`build_history_suite` derives from the feature spec
   (``expectations/performance_history.json`` is that suite for the default spec, kept equal by a
   test; each expectation has ``meta.rule`` and ``meta.level``): a failed ``table`` rule stops the
   run, rows failing ``row`` rules are dropped while they are at most ``history_max_rejected_share``
   of the history, above that the run stops;
3. **point-in-time dataset** (:func:`point_in_time_dataset`): for a loan observed at quarter ``t``,
   the target is 1 when it defaults in ``t+1 .. t+h`` (h = 4: within 12 months); rows are kept
   only when the outcome is known (a default in the window, or the loan still observed at
   ``t+h``), the loan is performing at ``t`` and the panel extends to ``t+h`` (otherwise only
   defaulters would survive in the last ``h`` quarters); features are the row's own values at ``t``;
4. **out-of-time split**: the latest ``holdout_quarters`` observation quarters are the test set;
   training rows are embargoed (:func:`models.pd_xgboost.embargoed`) so that no training target
   window reaches into the test period;
5. **train** the XGBoost model (time-aware search, refit on every training row) and, on the very
   same rows and target, the benchmark :class:`models.pd_logistic.MacroLogisticPD`;
6. **evaluate** both, and the generator's true PD when the history has it (synthetic data), on the
   same out-of-time rows: AUC, Gini, KS, Brier, log loss, Hosmer-Lemeshow, calibration by score
   band with binomial tests, PSI of the score and of every feature between training and test; the
   report (JSON, CSV, figures, model card) is written for the registry step.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from models import validation_metrics as vm
from models.feature_spec import FeatureSpec, load_feature_spec
from models.pd_horizon import horizon_pd
from models.pd_logistic import MacroLogisticPD
from models.pd_xgboost import XGBoostPD, embargoed
from models.projection import PD_FEATURES
from pipelines.adapters.object_store import read_uri_bytes
from pipelines.data.contract import FIELD_BY_NAME
from pipelines.data.gx import expectation, run_gx_suite
from pipelines.settings import REPO_ROOT

HISTORY_SUITE_PATH = REPO_ROOT / "expectations" / "performance_history.json"
HISTORY_SUITE_NAME = "performance_history"
TRUE_PD_COLUMN = "TrueDefaultProbability"  # synthetic histories only
MAX_DEFAULT_RATE = 0.25  # a per-quarter default rate above this is a broken extract, not a recession
# Plausible values of history columns: ranges checked when the column is present.
HISTORY_RANGES: dict[str, tuple[float | None, float | None]] = {
    "CreditScore": (FIELD_BY_NAME["CreditScore"].minimum, FIELD_BY_NAME["CreditScore"].maximum),
    "LoanAgeQuarters": (0, None),
    "CurrentLTV": (0, 10),
    "DSTI": (0, 10),
    "PaymentShockPoints": (-30, 30),
    "unemployment_rate_avg_4q": (0, 100),
    TRUE_PD_COLUMN: (0, 1),
}
CALIBRATION_BANDS = 10
# Expanding-window folds of the time-aware search: 3 validation blocks of 4 quarters (the latest 3 years
# before the out-of-time test), so the oldest fold still trains on a decade of the synthetic history.
PANEL_CV_FOLDS = 3
# On the 1M-row synthetic history, rates 0.1 and 0.2 reached the same CV AUC (0.844) and out-of-time AUC
# (0.840) with 60 and 41 trees; the stress engine scores every loan every quarter of every scenario and the
# cost is linear in trees, so panels use the faster rate (the estimator's default, 0.1, suits small tables).
PANEL_LEARNING_RATE = 0.2


# --- the GX suite ----------------------------------------------------------------------------------


def build_history_suite(spec: FeatureSpec) -> dict[str, Any]:
    """The performance history suite as plain JSON, derived from the feature spec and :data:`HISTORY_RANGES`.

    Range rules on columns the spec does not require carry ``meta.optional`` and are skipped when the
    column is absent (a real bank's history has no true PD).
    """
    required = [spec.id_column, spec.date_column, spec.event_column, *spec.features]
    expectations = [
        expectation("expect_table_columns_to_match_set", "table", "required_columns", column_set=required,
                     exact_match=False),
        expectation("expect_table_row_count_to_be_between", "table", "non_empty", min_value=1),
        expectation("expect_compound_columns_to_be_unique", "table", "one_row_per_loan_quarter",
                     column_list=[spec.id_column, spec.date_column]),
        expectation("expect_column_mean_to_be_between", "table", "plausible_default_rate",
                     column=spec.event_column, min_value=0, max_value=MAX_DEFAULT_RATE, strict_min=True),
        *[expectation("expect_column_values_to_not_be_null", "row", f"not_null:{c}", column=c)
          for c in (spec.id_column, spec.date_column, spec.event_column)],
        expectation("expect_column_values_to_be_in_set", "row", f"binary:{spec.event_column}",
                     column=spec.event_column, value_set=[0, 1]),
    ]
    for column, (low, high) in HISTORY_RANGES.items():
        entry = expectation("expect_column_values_to_be_between", "row", f"range:{column}", column=column,
                            min_value=low, max_value=high)
        if column not in required:
            entry["meta"]["optional"] = True
        expectations.append(entry)
    return {"name": HISTORY_SUITE_NAME, "expectations": expectations,
            "meta": {"generated_from": "pipelines/model/training.py:build_history_suite", "feature_spec": spec.name}}


def write_history_suite(path: Path = HISTORY_SUITE_PATH) -> Path:
    """Regenerate the suite file from the default feature spec."""
    path.write_text(json.dumps(build_history_suite(load_feature_spec()), indent=2) + "\n")
    return path


# --- ingest and validate -------------------------------------------------------------------------------


def read_history(source_uri: str, aws_region: str) -> tuple[pd.DataFrame, str]:
    """The history at ``source_uri`` (Parquet/CSV; path, ``file://``, ``s3://``)."""
    suffix = Path(urlparse(source_uri).path).suffix.lower()
    if suffix not in {".parquet", ".csv"}:
        raise ValueError(f"cannot tell the format of {source_uri!r}: use .parquet or .csv")
    data = io.BytesIO(read_uri_bytes(source_uri, aws_region))
    history = pd.read_parquet(data) if suffix == ".parquet" else pd.read_csv(data)
    return history, source_uri


def validate_history(history: pd.DataFrame, spec: FeatureSpec,
                     max_rejected_share: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the suite on ``history``; return the accepted rows and a report (see the module docstring)."""
    from pipelines.data.ingestion import TableContractError

    frame = history.reset_index(drop=True)  # row numbers are the index: GX lists unexpected rows by them
    suite = build_history_suite(spec)
    suite["expectations"] = [e for e in suite["expectations"]
                             if not e["meta"].get("optional") or e["kwargs"]["column"] in frame.columns]
    rejected = np.zeros(len(frame), dtype=bool)
    failed: dict[str, int] = {}
    suite = {**suite, "name": HISTORY_SUITE_NAME}
    for result in run_gx_suite(frame, suite):
        config = result["expectation_config"]
        if result["success"]:
            continue
        rule = config["meta"]["rule"]
        detail = result["result"]
        if config["meta"]["level"] == "table":
            raise TableContractError(f"performance history breaks {rule!r} ({config['type']} {config['kwargs']}): "
                                     f"observed {detail.get('observed_value', detail)}")
        rows = [int(row) for row in detail.get("unexpected_index_list") or []]
        failed[rule] = len(rows)
        rejected[rows] = True
    share = float(rejected.mean()) if len(frame) else 0.0
    if share > max_rejected_share:
        raise TableContractError(f"{rejected.sum()} history rows ({share:.2%}) fail row rules {failed}, above the "
                                 f"tolerated {max_rejected_share:.2%}")
    accepted = history.reset_index(drop=True).loc[~rejected].reset_index(drop=True)
    report = {"input_rows": len(frame), "accepted_rows": len(accepted), "rejected_rows": int(rejected.sum()),
              "failed_expectations": failed}
    return accepted, report


# --- point-in-time dataset and out-of-time split ---------------------------------------------------------


def point_in_time_dataset(history: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """One row per performing loan-quarter with a known outcome: features at ``t``, target over ``t+1..t+h``.

    The PD features are derived by :func:`pipelines.data.features.history_pd_features` (the same columns
    the stress engine hands the model); the true PD is kept when present, for evaluation only.
    """
    from pipelines.data.features import history_pd_features

    frame = history.assign(**history_pd_features(history))
    quarter = spec.quarters(frame)
    loan, _ = pd.factorize(frame[spec.id_column])
    event = frame[spec.event_column].to_numpy() == 1
    never = np.iinfo(np.int64).max
    by_loan = pd.DataFrame({"loan": loan, "quarter": quarter, "default_quarter": np.where(event, quarter, never)})
    groups = by_loan.groupby("loan")
    last_seen = groups["quarter"].transform("max").to_numpy()
    first_default = groups["default_quarter"].transform("min").to_numpy()
    horizon = spec.horizon_quarters
    performing = first_default > quarter
    target = performing & (first_default <= quarter + horizon)
    # Near the end of the panel only the defaulters would have a known outcome: keeping them would
    # inflate the default rate of the latest (out-of-time) quarters, so those quarters go entirely.
    window_observed = quarter + horizon <= quarter.max()
    keep = window_observed & (target | (performing & (last_seen >= quarter + horizon)))
    columns = list(dict.fromkeys([spec.id_column, spec.date_column, *spec.features, *PD_FEATURES]))
    if TRUE_PD_COLUMN in frame.columns:
        columns.append(TRUE_PD_COLUMN)
    dataset = frame.loc[keep, columns].copy()
    dataset[spec.target] = target[keep].astype(np.int8)
    return dataset.sort_values(spec.date_column, kind="stable").reset_index(drop=True)


def quarter_label(quarter: int) -> str:
    """``2024Q3`` for a quarter number from :meth:`FeatureSpec.quarters`."""
    return f"{quarter // 4}Q{quarter % 4 + 1}"


@dataclass
class OutOfTimeSplit:
    train: pd.DataFrame
    test: pd.DataFrame
    summary: dict[str, Any]


def out_of_time_split(dataset: pd.DataFrame, spec: FeatureSpec, holdout_quarters: int) -> OutOfTimeSplit:
    """Test: the latest ``holdout_quarters`` observation quarters; train: every row whose target window
    ends before them (embargo)."""
    quarter = spec.quarters(dataset)
    distinct = np.unique(quarter)
    if distinct.size <= holdout_quarters + spec.horizon_quarters:
        raise ValueError(f"{distinct.size} observation quarters cannot hold out {holdout_quarters} quarters "
                         f"after a {spec.horizon_quarters}-quarter embargo")
    start = int(distinct[-holdout_quarters])
    test_rows = quarter >= start
    train_rows = embargoed(quarter, start, spec.horizon_quarters)
    train, test = dataset.loc[train_rows].reset_index(drop=True), dataset.loc[test_rows].reset_index(drop=True)
    summary = {
        "train_quarters": [quarter_label(int(q)) for q in (quarter[train_rows].min(), quarter[train_rows].max())],
        "test_quarters": [quarter_label(start), quarter_label(int(distinct[-1]))],
        "embargo_quarters": spec.horizon_quarters,
        "train_rows": len(train), "test_rows": len(test),
        "train_default_rate": float(train[spec.target].mean()), "test_default_rate": float(test[spec.target].mean()),
    }
    return OutOfTimeSplit(train, test, summary)


# --- train and evaluate ------------------------------------------------------------------------------------


def train_models(train: pd.DataFrame, spec: FeatureSpec, n_candidates: int, seed: int,
                 n_jobs: int) -> tuple[XGBoostPD, MacroLogisticPD]:
    """The XGBoost model and the benchmark logistic model, fitted on the same rows and target."""
    from threadpoolctl import threadpool_limits

    target = train[spec.target].to_numpy()
    model = XGBoostPD(spec, time_column=spec.date_column, cv_folds=PANEL_CV_FOLDS, learning_rate=PANEL_LEARNING_RATE,
                      n_candidates=n_candidates, random_state=seed, n_jobs=n_jobs).fit(train, target)
    # The logistic fit is hundreds of L-BFGS steps of small matrix-vector products: BLAS threads cost more
    # than they save there (measured 25 s -> 4 s on 24k rows on a busy 2-core worker).
    with threadpool_limits(limits=1, user_api="blas"):
        benchmark = MacroLogisticPD(horizon_quarters=spec.horizon_quarters).fit(train[list(PD_FEATURES)], target)
    return model, benchmark


def out_of_time_predictions(test: pd.DataFrame, spec: FeatureSpec, model: XGBoostPD,
                            benchmark: MacroLogisticPD) -> dict[str, np.ndarray]:
    """PD over the target horizon of every test row, per model (and the truth on synthetic data)."""
    predictions = {"xgboost": model.predict_pd(test),
                   "benchmark_logistic": benchmark.predict_pd(test[list(PD_FEATURES)])}
    if TRUE_PD_COLUMN in test.columns:
        # The generator's hazard of the observation quarter, annualised like every quarterly PD here.
        predictions["true_pd"] = horizon_pd(test[TRUE_PD_COLUMN].to_numpy(), spec.horizon_quarters)
    return predictions


def performance_metrics(y: np.ndarray, probability: np.ndarray, alpha: float) -> dict[str, Any]:
    """Discrimination, accuracy and calibration of one model on one sample."""
    table = vm.calibration_table(y, probability, CALIBRATION_BANDS)
    hl_statistic, hl_p_value = vm.hosmer_lemeshow(y, probability, CALIBRATION_BANDS)
    auc, auc_se = vm.auc(y, probability), vm.auc_standard_error(y, probability)
    return {
        "auc": auc, "auc_se": auc_se, "auc_ci_95": [auc - 1.96 * auc_se, auc + 1.96 * auc_se],
        "gini": vm.gini(y, probability), "ks": vm.ks_statistic(y, probability),
        "brier": vm.brier_score(y, probability), "log_loss": vm.log_loss(y, probability),
        "hosmer_lemeshow": hl_statistic, "hosmer_lemeshow_p_value": hl_p_value,
        "calibrated_band_share": vm.calibrated_band_share(table, alpha),
        "mean_pd": float(np.mean(probability)), "observed_default_rate": float(np.mean(y)),
        "calibration_table": [band.as_dict() for band in table],
    }


def stability(train: pd.DataFrame, test: pd.DataFrame, spec: FeatureSpec, model: XGBoostPD) -> dict[str, Any]:
    """PSI of the model score and of every feature, training sample -> out-of-time sample."""
    features = {c: vm.psi(train[c].to_numpy(dtype=float, na_value=np.nan), test[c].to_numpy(dtype=float,
                                                                                          na_value=np.nan))
                for c in spec.numeric}
    features |= {c: vm.psi_categorical(train[c].astype(str), test[c].astype(str)) for c in spec.categorical}
    return {"score": vm.psi(model.margin(train), model.margin(test)), "features": features}


def evaluate(split: OutOfTimeSplit, spec: FeatureSpec, model: XGBoostPD, predictions: dict[str, np.ndarray],
             alpha: float) -> dict[str, Any]:
    """Every number of the model report: metrics per model on the same out-of-time rows, stability.

    ``predictions`` are :func:`out_of_time_predictions` of ``split.test``.
    """
    y = split.test[spec.target].to_numpy()
    return {
        "split": split.summary,
        "target": spec.target, "horizon_quarters": spec.horizon_quarters,
        "models": {name: performance_metrics(y, p, alpha) for name, p in predictions.items()},
        # XGBoost's AUC minus every other model's on the same rows, with DeLong's paired standard error:
        # the single-AUC intervals overlap even when the paired test separates two models.
        # (empty when the evaluation has no XGBoost predictions, as for a benchmark registered on its own)
        "xgboost_auc_difference": {name: vm.paired_auc_difference(y, predictions["xgboost"], p).as_dict()
                                   for name, p in predictions.items() if name != "xgboost"}
                                  if "xgboost" in predictions else {},
        "train_auc_xgboost": vm.auc(split.train[spec.target].to_numpy(), model.margin(split.train)),
        "psi": stability(split.train, split.test, spec, model),
        "hyper_parameters": model.params_ | {"n_trees": model.n_trees_},
        "search": model.search_results_,
    }
