"""The PD model report: evaluation numbers, figures and the model card, as files for the registry.

Figures are drawn with matplotlib's object API (``Figure``, never ``pyplot``), so nothing touches a
GUI backend or global state inside an Airflow worker. The SHAP summary uses XGBoost's exact TreeSHAP
contributions (:meth:`models.pd_xgboost.XGBoostPD.shap_values`), so no ``shap`` package is needed.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.feature_spec import FeatureSpec
from models.pd_xgboost import XGBoostPD
from models.validation_metrics import roc_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipelines.adapters.object_store import ObjectStore
    from pipelines.model.training import OutOfTimeSplit

SHAP_SAMPLE_ROWS = 2000
PSI_ALERT = 0.25  # the usual "significant shift" threshold
LABELS = {"xgboost": "XGBoost (challenger)", "benchmark_logistic": "Benchmark logistic", "true_pd": "True PD"}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def roc_figure(y: np.ndarray, predictions: dict[str, np.ndarray], aucs: dict[str, float]) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 5))
    ax = figure.subplots()
    for name, probability in predictions.items():
        fpr, tpr, _ = roc_curve(y, probability)
        ax.plot(fpr, tpr, label=f"{LABELS[name]} (AUC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC, out-of-time sample")
    ax.legend(loc="lower right")
    return _png(figure)


def calibration_figure(tables: dict[str, list[dict[str, Any]]]) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 5))
    ax = figure.subplots()
    low, high = 1.0, 0.0
    for name, table in tables.items():
        predicted = np.array([band["mean_predicted"] for band in table])
        observed = np.array([band["observed_rate"] for band in table])
        ax.plot(predicted, np.maximum(observed, 1e-5), marker="o", label=LABELS[name])
        low, high = min(low, predicted.min()), max(high, predicted.max(), observed.max())
    ax.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1)
    ax.set(xscale="log", yscale="log", xlabel="Mean predicted PD (score band)", ylabel="Observed default rate",
           title="Calibration by score band, out-of-time")
    ax.legend(loc="upper left")
    return _png(figure)


def importance_figure(importance: dict[str, float]) -> bytes:
    from matplotlib.figure import Figure

    names = sorted(importance, key=importance.get)
    total = sum(importance.values()) or 1.0
    figure = Figure(figsize=(6, 0.35 * len(names) + 1.2))
    ax = figure.subplots()
    ax.barh(names, [importance[n] / total for n in names])
    ax.set(xlabel="Share of total split gain", title="XGBoost feature importance")
    return _png(figure)


def shap_summary_figure(shap: pd.DataFrame, features: pd.DataFrame) -> bytes:
    """Beeswarm-style summary: one row per feature (by mean |SHAP|), each point a loan, colour the
    feature's value (percentile within the sample; category code for categoricals)."""
    from matplotlib.figure import Figure

    contributions = shap.drop(columns="bias")
    order = contributions.abs().mean().sort_values().index.tolist()
    figure = Figure(figsize=(7, 0.4 * len(order) + 1.5))
    ax = figure.subplots()
    rng = np.random.default_rng(0)
    scatter = None
    for row, name in enumerate(order):
        values = features[name]
        colour = (values.cat.codes.astype(float) if isinstance(values.dtype, pd.CategoricalDtype)
                  else pd.to_numeric(values)).rank(pct=True).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, len(values))
        scatter = ax.scatter(contributions[name], row + jitter, c=colour, cmap="coolwarm", s=4, alpha=0.6,
                             vmin=0, vmax=1)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)), order)
    ax.set(xlabel="SHAP value (contribution to the log-odds, before calibration)", title="SHAP summary")
    figure.colorbar(scatter, ax=ax, label="feature value (percentile; missing grey)")
    return _png(figure)


def model_card(evaluation: dict[str, Any], spec: FeatureSpec, model: XGBoostPD, provenance: dict[str, Any]) -> str:
    """The model card (Markdown): purpose, data, method, performance, stability and limits."""
    split = evaluation["split"]
    models = evaluation["models"]
    rows = "\n".join(
        f"| {LABELS[name]} | {m['auc']:.4f} | {m['auc_ci_95'][0]:.4f}-{m['auc_ci_95'][1]:.4f} | "
        f"{m['gini']:.4f} | {m['ks']:.4f} | {m['brier']:.5f} | "
        f"{m['log_loss']:.5f} | {m['hosmer_lemeshow_p_value']:.3g} | {m['calibrated_band_share']:.0%} | "
        f"{m['mean_pd']:.4f} |"
        for name, m in models.items()
    )
    shifted = {k: round(v, 3) for k, v in evaluation["psi"]["features"].items() if v > PSI_ALERT}
    truth_note = ("- Synthetic history: the generator's true PD (its quarterly hazard at t, annualised) is "
                  "reported alongside as a reference.\n" if "true_pd" in models else "")
    monotone = ", ".join(f"{c} ({'+' if d > 0 else '-'})" for c, d in spec.monotone.items()) or "none"
    return f"""# Model card: {spec.name} (XGBoost PD)

## Purpose
{spec.description}

Used by the quarterly stress test, which needs the PD of each projected quarter: the 12-month PD
over {spec.horizon_quarters} quarters is converted to a constant quarterly hazard,
q = 1 - (1 - p)^(1/{spec.horizon_quarters}) (`models/pd_horizon.py`). Not validated for origination
decisions, pricing or IFRS 9 lifetime PDs.

## Data
- Source: `{provenance['source']}`, content SHA-256 `{provenance['data_sha256']}`
- Airflow run: `{provenance['airflow_run_id']}`
- Training observation quarters {split['train_quarters'][0]} to {split['train_quarters'][1]}
  ({split['train_rows']:,} loan-quarters, {split['train_default_rate']:.2%} default within
  {spec.horizon_quarters} quarters); out-of-time test {split['test_quarters'][0]} to
  {split['test_quarters'][1]} ({split['test_rows']:,} loan-quarters,
  {split['test_default_rate']:.2%}); embargo {split['embargo_quarters']} quarters so no training target
  window reaches the test period.
- Target `{spec.target}`: the loan defaults (`{spec.event_column}`) in quarters t+1..t+{spec.horizon_quarters};
  rows without {spec.horizon_quarters} quarters of follow-up and without a default are left out.
- Features (values at t): numeric {', '.join(spec.numeric)}; categorical {', '.join(spec.categorical) or 'none'}.
{truth_note}
## Method
XGBoost (hist), monotone constraints: {monotone}. Hyper-parameters chosen among
{len(model.search_results_)} candidates by {"expanding-window" if model.time_column else "stratified"}
cross-validation (mean validation AUC), {model.n_trees_} trees refitted on every training row;
calibration: {model.calibration} (fitted on out-of-fold margins when not none). Parameters:
`{json.dumps(model.params_)}`.

## Performance (out-of-time)
| Model | AUC | AUC 95 % CI | Gini | KS | Brier | Log loss | HL p-value | Bands calibrated | Mean PD |
|---|---|---|---|---|---|---|---|---|---|
{rows}

Observed default rate {models['xgboost']['observed_default_rate']:.4f}. AUC confidence intervals: AUC +- 1.96
standard errors (Hanley and McNeil); an AUC difference between two models on the same rows inside
them is not evidence either way. "Bands calibrated": share of
{len(models['xgboost']['calibration_table'])} score bands whose binomial test does not reject at the configured level.

## Stability
PSI of the score, training to test: {evaluation['psi']['score']:.3f}. Features with PSI above {PSI_ALERT}:
{shifted or 'none'}.

## Limits
- Trees do not extrapolate: beyond the range of a feature in the training data the PD stops
  moving with it. Scenarios more severe than the worst training quarters are under-stated in
  those features; the monotone constraints guarantee the direction, not the size, of the response.
- The quarterly PD assumes a constant hazard within the 12 months implied by each quarter's features.
- The test period is one macro regime; out-of-time performance in a downturn is not measured
  unless the test window contains one.
- PDs are point-in-time: they follow the default rates of the training quarters given the macro
  features, not a through-the-cycle average.
"""


def write_report(store: ObjectStore, prefix: str, evaluation: dict[str, Any], split: OutOfTimeSplit,
                 spec: FeatureSpec, model: XGBoostPD, predictions: dict[str, np.ndarray],
                 provenance: dict[str, Any]) -> list[str]:
    """Write every report file under ``prefix``; returns their keys."""
    y = split.test[spec.target].to_numpy()
    models = evaluation["models"]
    sample = split.test.sample(min(SHAP_SAMPLE_ROWS, len(split.test)), random_state=0)
    files: dict[str, bytes] = {
        "evaluation.json": json.dumps(evaluation, indent=2, default=float).encode(),
        "roc.png": roc_figure(y, predictions, {name: m["auc"] for name, m in models.items()}),
        "calibration.png": calibration_figure({name: m["calibration_table"] for name, m in models.items()}),
        "feature_importance.png": importance_figure(model.feature_importance()),
        "shap_summary.png": shap_summary_figure(model.shap_values(sample), sample[list(spec.features)]),
        "model_card.md": model_card(evaluation, spec, model, provenance).encode(),
    }
    for name, metrics in models.items():
        files[f"calibration_{name}.csv"] = pd.DataFrame(metrics["calibration_table"]).to_csv(index=False).encode()
    for name, data in files.items():
        store.put_bytes(f"{prefix}/{name}", data)
    return sorted(f"{prefix}/{name}" for name in files)
