"""Daily portfolio monitoring: score today's book, back-test the PD model, measure drift.

* **score**: the PD model the stress test would use (:func:`pipelines.model.selection.resolve_stress_model`:
  the MLflow champion, else the benchmark logistic model) applied to the validated book at its as-of
  date: the loan features of :mod:`pipelines.data.features` plus the macro drivers of the as-of quarter
  from the Fed history, with no payment shock (the rate at jump-off is the loan's own rate).
* **back-test**: AUC and calibration (share of score bands whose binomial test does not reject,
  :mod:`models.validation_metrics`) on the performance history, the only data with observed defaults,
  out of time: only the latest quarters from the version's ``oot_start_quarter`` on (the first
  quarter after its training window and embargo, recorded at registration). A version that records
  no training window (registered by an earlier release) is back-tested on the latest quarters and
  the result says ``in_sample`` (a note starting ``IN-SAMPLE``): its compliance records are then "Not
  Evaluated", never "Compliant", as an in-sample AUC is no evidence of out-of-time performance.
* **drift**: PSI of the score and of every loan-level PD feature
  (:data:`pipelines.compliance.rules.DRIFT_FEATURES`) against a reference distribution: the previous
  *different* snapshot this monitoring scored (kept in ``monitoring/scored_snapshots.json``). The
  training pipeline does not publish its training-sample distribution yet; when it does, that is the
  better reference. On the first snapshot there is no reference and PSI is not evaluated.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from models import validation_metrics as vm
from models.amortisation import QUARTERS_PER_YEAR
from models.projection import PD_FEATURES, PDFunction
from pipelines.adapters.object_store import ObjectStore
from pipelines.compliance.rules import DRIFT_FEATURES
from pipelines.data.macro import quarterly_changes

SCORE = "QuarterlyPD"
SCORED_SNAPSHOTS_KEY = "monitoring/scored_snapshots.json"
CALIBRATION_BANDS = 10


def macro_drivers(history: pd.DataFrame, quarter: pd.Period) -> dict[str, float]:
    """The PD model's macro inputs at one history quarter (same definitions as the performance history)."""
    unemployment = history["unemployment_rate"].rolling(QUARTERS_PER_YEAR, min_periods=1).mean()
    return {
        "unemployment_rate_avg_4q": float(unemployment.loc[quarter]),
        "unemployment_rate_avg_4q_chg_4q": float(unemployment.diff(QUARTERS_PER_YEAR).loc[quarter]),
        "house_price_index_chg_4q": float(quarterly_changes(history[["house_price_index"]]).loc[quarter].iloc[0]),
    }


def jump_off_pd_features(features: pa.Table, history: pd.DataFrame) -> pd.DataFrame:
    """:data:`models.projection.PD_FEATURES` of every loan of a feature table at its as-of date."""
    quarter = pd.Period(features.schema.metadata[b"macro_quarter"].decode(), freq="Q")
    frame = pd.DataFrame({
        "ProductSegment": features.column("ProductSegment").to_numpy(zero_copy_only=False),
        "CreditScore": features.column("CreditScore").to_numpy(zero_copy_only=False),
        "LoanAgeQuarters": features.column("LoanAgeQuarters").to_numpy(zero_copy_only=False).astype(np.float64),
        "CurrentLTV": features.column("LoanToValue").to_numpy(zero_copy_only=False),
        "DSTI": features.column("DebtServiceToIncome").to_numpy(zero_copy_only=False),
        "PaymentShockPoints": 0.0,
        **macro_drivers(history, quarter),
    })
    return frame[list(PD_FEATURES)]


def book_to_score(features: pa.Table, history: pd.DataFrame) -> pd.DataFrame:
    """LoanId and the PD features of every loan: what either scorer (in process or batch transform) scores."""
    frame = jump_off_pd_features(features, history)
    frame.insert(0, "LoanId", features.column("LoanId").to_numpy(zero_copy_only=False))
    return frame


def with_score(book: pd.DataFrame, quarterly_pd: np.ndarray) -> pd.DataFrame:
    """``book`` (of :func:`book_to_score`) with the quarterly PD of every loan as :data:`SCORE`."""
    return book.assign(**{SCORE: np.clip(np.asarray(quarterly_pd, dtype=np.float64), 0.0, 1.0)})


def score_book(features: pa.Table, history: pd.DataFrame, pd_function: PDFunction) -> pd.DataFrame:
    """LoanId, the PD features and the quarterly PD of every loan, scored in this process."""
    book = book_to_score(features, history)
    return with_score(book, pd_function(book[list(PD_FEATURES)]))


def backtest(history: pd.DataFrame, pd_function: PDFunction, quarters: int, alpha: float,
             oot_start_quarter: str | None) -> dict[str, Any]:
    """Discrimination and calibration of the quarterly PD on the latest ``quarters`` of the history from
    ``oot_start_quarter`` (``2023Q1``) on; ``None`` (no recorded training window): the latest quarters,
    flagged ``in_sample``."""
    from pipelines.data.features import history_pd_features

    observed = pd.to_datetime(history["ObservationQuarter"])
    period = observed.dt.to_period("Q")
    in_sample = oot_start_quarter is None
    eligible = period if in_sample else period[period >= pd.Period(oot_start_quarter, freq="Q")]
    window = pd.Series(eligible.unique()).sort_values().iloc[-quarters:]
    recent = history.loc[period.isin(window).to_numpy()]
    outcome = recent["DefaultFlag"].to_numpy(dtype=np.int8)
    span = f"{window.iloc[0]}..{window.iloc[-1]}" if len(window) else "none"
    summary: dict[str, Any] = {
        "window": span, "oot_start_quarter": oot_start_quarter, "rows": int(outcome.size),
        "defaults": int(outcome.sum()), "observed_default_rate": float(outcome.mean()) if outcome.size else None,
        "mean_predicted_pd": None, "auc": None, "calibrated_band_share": None, "calibration": [],
        "in_sample": in_sample,
    }
    if outcome.size == 0:
        summary["note"] = (f"the performance history has no quarter from {oot_start_quarter}, where the model's "
                           "out-of-time period starts: nothing to back-test out of time")
        return summary
    probability = np.clip(pd_function(history_pd_features(recent)), 0.0, 1.0)
    summary["mean_predicted_pd"] = float(probability.mean())
    if 0 < outcome.sum() < outcome.size:
        table = vm.calibration_table(outcome, probability, CALIBRATION_BANDS)
        summary |= {"auc": vm.auc(outcome, probability),
                    "calibrated_band_share": vm.calibrated_band_share(table, alpha),
                    "calibration": [band.as_dict() for band in table],
                    "note": f"performance history {span}, {outcome.size} loan-quarters, {outcome.sum()} defaults"}
    else:
        summary["note"] = f"performance history {span} has {int(outcome.sum())} defaults in {outcome.size} rows: " \
                          "AUC and calibration need both defaults and non-defaults"
    if in_sample:
        summary["note"] = ("IN-SAMPLE: the model version records no training window, so these quarters may be ones "
                           f"it was estimated on and this is not an out-of-time back-test; {summary['note']}")
    else:
        summary["note"] = f"out of time (from {oot_start_quarter}, after the training window): {summary['note']}"
    return summary


def drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """PSI of the score and of every drift feature of ``current`` against ``reference``."""
    features = {}
    for name in DRIFT_FEATURES:
        if name == "ProductSegment":
            features[name] = vm.psi_categorical(reference[name].astype(str), current[name].astype(str))
        else:
            features[name] = vm.psi(reference[name].to_numpy(dtype=np.float64),
                                    current[name].to_numpy(dtype=np.float64))
    return {"score_psi": vm.psi(reference[SCORE].to_numpy(), current[SCORE].to_numpy()), "feature_psi": features}


def scored_snapshots(store: ObjectStore) -> list[dict[str, Any]]:
    """Every snapshot the monitoring has scored, oldest first."""
    return json.loads(store.get_bytes(SCORED_SNAPSHOTS_KEY)) if store.exists(SCORED_SNAPSHOTS_KEY) else []


def reference_snapshot(store: ObjectStore, snapshot_id: str, model_version: str) -> dict[str, Any] | None:
    """The latest scored snapshot other than ``snapshot_id`` scored by the same model version, if any.

    Same model, because a score PSI across two models measures the model change, not the book's."""
    earlier = [entry for entry in scored_snapshots(store)
               if entry["snapshot_id"] != snapshot_id and entry["model_version"] == model_version]
    return earlier[-1] if earlier else None


def remember_scored_snapshot(store: ObjectStore, entry: dict[str, Any]) -> None:
    """Add (or move to the end) the scored snapshot ``entry`` in the monitoring's list."""
    entries = [e for e in scored_snapshots(store)
               if (e["snapshot_id"], e["model_version"]) != (entry["snapshot_id"], entry["model_version"])]
    store.put_bytes(SCORED_SNAPSHOTS_KEY, json.dumps([*entries, entry], indent=2).encode())
