"""The PD model report: evaluation numbers, figures and the model card of every candidate, as files for
the registry.

A training run has two candidates fitted on the same rows (``benchmark_logistic`` and ``xgboost``), and
each registered version carries the same evidence: the shared out-of-time numbers and figures (every
model beside the others and the generator's true PD), and its own SHAP summary and model card
(:func:`model_card`), rewritten with the gate's decision once the gate has judged it.

Figures are drawn with matplotlib's object API (``Figure``, never ``pyplot``), so nothing touches a
GUI backend or global state inside an Airflow worker. SHAP values are exact without a ``shap``
package: XGBoost's TreeSHAP (:meth:`models.pd_xgboost.XGBoostPD.shap_values`) and, for the linear
benchmark, ``beta_k (x_k - mean x_k)`` per regressor (:meth:`models.pd_logistic.MacroLogisticPD.shap_values`).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.feature_spec import FeatureSpec
from models.pd_logistic import NON_NEGATIVE_TERMS, NON_POSITIVE_TERMS, MacroLogisticPD
from models.pd_xgboost import XGBoostPD
from models.projection import PD_FEATURES
from models.validation_metrics import roc_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pipelines.adapters.object_store import ObjectStore
    from pipelines.model.training import OutOfTimeSplit

SHAP_SAMPLE_ROWS = 2000
SHAP_SUMMARY_TERMS = 8  # rows of the SHAP table in the card and the version description
PSI_ALERT = 0.25  # the usual "significant shift" threshold
LABELS = {"xgboost": "XGBoost", "benchmark_logistic": "Benchmark logistic", "true_pd": "True PD (generator)"}
FLAVOUR_TITLES = {"xgboost": "XGBoost PD", "benchmark_logistic": "benchmark macro-linked logistic PD"}
# An MLflow model version description is a VARCHAR(5000) in the SQL stores (PostgreSQL enforces it).
DESCRIPTION_LIMIT = 5000
COMPARISON_HEADER = ("| Model | AUC | AUC SE | AUC 95 % CI | AUC minus this version | Gini | KS | Brier | Log loss | "
                     "HL p-value | Bands calibrated | Mean PD |\n|" + "---|" * 12)


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


def shap_mean_abs(shap: pd.DataFrame) -> dict[str, float]:
    """Mean absolute SHAP value per feature (per regressor for the logistic model), largest first."""
    means = shap.drop(columns="bias").abs().mean().sort_values(ascending=False)
    return {name: float(value) for name, value in means.items()}


def _shap_features(model: XGBoostPD | MacroLogisticPD, sample: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """What each SHAP column is the contribution of, to colour the summary by."""
    return sample[list(spec.features)] if isinstance(model, XGBoostPD) else model.term_frame(sample[list(PD_FEATURES)])


def constraints(candidate: str, spec: FeatureSpec) -> str:
    """The model's shape constraints, in words."""
    if candidate == "xgboost":
        return "monotone constraints (tree splits): " + (
            ", ".join(f"{c} ({'+' if d > 0 else '-'})" for c, d in spec.monotone.items()) or "none")
    return ("sign constraints on the coefficients (the model is monotone in each regressor): non-negative "
            f"{', '.join(sorted(NON_NEGATIVE_TERMS))}; non-positive {', '.join(sorted(NON_POSITIVE_TERMS))}")


def _method(candidate: str, model: XGBoostPD | MacroLogisticPD) -> str:
    if isinstance(model, XGBoostPD):
        return (f"XGBoost (hist). Hyper-parameters chosen among {len(model.search_results_)} candidates by "
                f"{'expanding-window' if model.time_column else 'stratified'} cross-validation (mean validation "
                f"AUC), {model.n_trees_} trees refitted on every training row; calibration: {model.calibration} "
                f"(fitted on out-of-fold margins when not none). Parameters: `{json.dumps(model.params_)}`.")
    coefficients = ", ".join(f"{k} {v:+.4f}" for k, v in model.coefficient_table().items())
    return ("Logistic regression by maximum likelihood (L-BFGS-B, ridge penalty "
            f"{model.l2_penalty:g}) on segment intercepts and the regressors of `models/pd_logistic.py`, fitted on "
            f"the same rows and target as the XGBoost model. Coefficients: {coefficients}.")


def comparison_rows(evaluation: dict[str, Any], candidate: str) -> list[str]:
    """The out-of-time comparison table (Markdown rows): this version beside the other models of the run."""
    this_auc = evaluation["models"][candidate]["auc"]
    rows = []
    for name, m in evaluation["models"].items():
        label = f"**{LABELS[name]} (this version)**" if name == candidate else LABELS[name]
        rows.append(f"| {label} | {m['auc']:.4f} | {m['auc_se']:.4f} | {m['auc_ci_95'][0]:.4f}-{m['auc_ci_95'][1]:.4f} "
                    f"| {m['auc'] - this_auc:+.4f} | {m['gini']:.4f} | {m['ks']:.4f} | {m['brier']:.5f} | "
                    f"{m['log_loss']:.5f} | {m['hosmer_lemeshow_p_value']:.3g} | {m['calibrated_band_share']:.0%} | "
                    f"{m['mean_pd']:.4f} |")
    return rows


def _gate_lines(decision: dict[str, Any] | None) -> list[str]:
    if decision is None:
        return ["Pending: the promotion gate has not judged this version yet."]
    verdict = "PROMOTED to champion" if decision["promote"] else "NOT promoted"
    return [f"{verdict} against {decision['incumbent']} ({decision['decided_at']}):",
            *[f"- {reason}" for reason in decision["reasons"]]]


def _lineage_lines(provenance: dict[str, Any], registration: dict[str, Any] | None) -> list[str]:
    lines = [f"- Data: `{provenance['source']}`, content SHA-256 `{provenance['data_sha256']}`",
             f"- Code: git commit `{provenance['code_version']}`",
             f"- Airflow run: `{provenance['airflow_run_id']}`"]
    if registration is not None:
        lines.append(f"- MLflow: `{registration['model_uri']}`, run `{registration['mlflow_run_id']}`")
    return lines


def model_card(evaluation: dict[str, Any], spec: FeatureSpec, candidate: str, model: XGBoostPD | MacroLogisticPD,
               provenance: dict[str, Any], shap: dict[str, float], decision: dict[str, Any] | None = None,
               registration: dict[str, Any] | None = None) -> str:
    """The model card (Markdown) of one candidate: purpose, data, method, comparison, SHAP, gate, lineage, limits."""
    split = evaluation["split"]
    models = evaluation["models"]
    shifted = {k: round(v, 3) for k, v in evaluation["psi"]["features"].items() if v > PSI_ALERT}
    truth_note = ("- Synthetic history: the generator's true PD (its quarterly hazard at t, annualised) is "
                  "reported alongside as a reference.\n" if "true_pd" in models else "")
    shap_rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in list(shap.items())[:SHAP_SUMMARY_TERMS])
    rows = "\n".join(comparison_rows(evaluation, candidate))
    gate, lineage = "\n".join(_gate_lines(decision)), "\n".join(_lineage_lines(provenance, registration))
    return f"""# Model card: {spec.name} ({FLAVOUR_TITLES[candidate]})

## Purpose
{spec.description}

Used by the quarterly stress test, which needs the PD of each projected quarter: the 12-month PD
over {spec.horizon_quarters} quarters is converted to a constant quarterly hazard,
q = 1 - (1 - p)^(1/{spec.horizon_quarters}) (`models/pd_horizon.py`). Not validated for origination
decisions, pricing or IFRS 9 lifetime PDs.

## Data
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
{_method(candidate, model)}

Shape: {constraints(candidate, spec)}.

## Performance out of time, against the baselines
{COMPARISON_HEADER}
{rows}

All rows are scored on the same {split['test_rows']:,} out-of-time loan-quarters (observed default rate
{models[candidate]['observed_default_rate']:.4f}). AUC standard errors by Hanley and McNeil (1982), CI = AUC +- 1.96 SE;
two models on the same rows are positively correlated, so overlapping intervals are a conservative reading of a
difference. "Bands calibrated": share of {len(models[candidate]['calibration_table'])} score bands whose binomial
test does not reject at the configured level.

## SHAP summary (mean absolute contribution to the log-odds, {'features' if candidate == 'xgboost' else 'regressors'})
| {'Feature' if candidate == 'xgboost' else 'Regressor'} | mean abs SHAP |
|---|---|
{shap_rows}

Figure: `report/shap_summary.png`.

## Promotion gate
{gate}

## Lineage
{lineage}

## Stability
PSI of the XGBoost score, training to test: {evaluation['psi']['score']:.3f}. Features with PSI above {PSI_ALERT}:
{shifted or 'none'}.

## Limits
- Trees do not extrapolate, and the logistic model extrapolates linearly in its regressors: beyond the
  range of the training data neither response is evidence. The shape constraints guarantee the
  direction, not the size, of the response.
- The quarterly PD assumes a constant hazard within the 12 months implied by each quarter's features.
- The test period is one macro regime; out-of-time performance in a downturn is not measured
  unless the test window contains one.
- PDs are point-in-time: they follow the default rates of the training quarters given the macro
  features, not a through-the-cycle average.
"""


def version_summary(evaluation: dict[str, Any], candidate: str, provenance: dict[str, Any], shap: dict[str, float],
                    decision: dict[str, Any], registration: dict[str, Any]) -> str:
    """The reviewer's summary of the model card, the registered version's description (Markdown, at most
    :data:`DESCRIPTION_LIMIT` characters; the card itself is the run's ``report/model_card.md``)."""
    split = evaluation["split"]
    top = ", ".join(f"{name} {value:.3f}" for name, value in list(shap.items())[:SHAP_SUMMARY_TERMS // 2])
    lines = [
        f"**{FLAVOUR_TITLES[candidate]}**, model card: run artifact `report/model_card.md`.",
        "",
        *_gate_lines(decision),
        "",
        f"Data: train {split['train_quarters'][0]}-{split['train_quarters'][1]} ({split['train_rows']:,} rows), "
        f"out of time {split['test_quarters'][0]}-{split['test_quarters'][1]} ({split['test_rows']:,} rows).",
        "",
        "| Model | AUC (Hanley-McNeil 95 % CI) | Brier | Bands calibrated |",
        "|---|---|---|---|",
        *[f"| {LABELS[name]}{' (this)' if name == candidate else ''} | {m['auc']:.4f} ({m['auc_ci_95'][0]:.4f}-"
          f"{m['auc_ci_95'][1]:.4f}) | {m['brier']:.5f} | {m['calibrated_band_share']:.0%} |"
          for name, m in evaluation["models"].items()],
        "",
        f"Top mean abs SHAP: {top}.",
        "",
        *_lineage_lines(provenance, registration),
    ]
    text = "\n".join(lines)
    cut = "\n... (see report/model_card.md)"
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - len(cut)] + cut


def write_report(store: ObjectStore, prefix: str, evaluation: dict[str, Any], split: OutOfTimeSplit,
                 spec: FeatureSpec, candidates: dict[str, XGBoostPD | MacroLogisticPD],
                 predictions: dict[str, np.ndarray], provenance: dict[str, Any]) -> list[str]:
    """Write every report file under ``prefix``: the run's shared files, and under ``<candidate>/`` each
    candidate's SHAP summary (figure and ``shap_mean_abs.json``) and model card; returns their keys."""
    y = split.test[spec.target].to_numpy()
    models = evaluation["models"]
    sample = split.test.sample(min(SHAP_SAMPLE_ROWS, len(split.test)), random_state=0)
    files: dict[str, bytes] = {
        "evaluation.json": json.dumps(evaluation, indent=2, default=float).encode(),
        "roc.png": roc_figure(y, predictions, {name: m["auc"] for name, m in models.items()}),
        "calibration.png": calibration_figure({name: m["calibration_table"] for name, m in models.items()}),
    }
    for name, metrics in models.items():
        files[f"calibration_{name}.csv"] = pd.DataFrame(metrics["calibration_table"]).to_csv(index=False).encode()
    for candidate, model in candidates.items():
        shap = model.shap_values(sample if isinstance(model, XGBoostPD) else sample[list(PD_FEATURES)])
        summary = shap_mean_abs(shap)
        files[f"{candidate}/shap_summary.png"] = shap_summary_figure(shap, _shap_features(model, sample, spec))
        files[f"{candidate}/shap_mean_abs.json"] = json.dumps(summary, indent=2).encode()
        files[f"{candidate}/model_card.md"] = model_card(evaluation, spec, candidate, model, provenance,
                                                         summary).encode()
        if isinstance(model, XGBoostPD):
            files[f"{candidate}/feature_importance.png"] = importance_figure(model.feature_importance())
    for name, data in files.items():
        store.put_bytes(f"{prefix}/{name}", data)
    return sorted(f"{prefix}/{name}" for name in files)
