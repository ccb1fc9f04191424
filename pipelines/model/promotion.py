"""The promotion gate of the PD model: a registered version becomes ``champion`` only when it earns it.

A training run registers its candidates, simplest first (the benchmark logistic model, then the
XGBoost model, both fitted on the same rows), and the gate judges them in that order, each on the
*same* out-of-time rows against the incumbent: the current champion (unless a reviewer rejected it),
else the candidate judged before it in this run, else none. A candidate passes when at least
``promotion_min_calibrated_band_share`` of its score bands pass a binomial test at
``promotion_calibration_alpha`` (one-sided: a band fails when it has significantly *more* defaults
than predicted, the supervisory concern of BCBS Working Paper 14, 2005, section on the binomial test),
its mean PD is at most ``promotion_max_mean_pd_ratio`` times the observed default rate (a bound on
conservatism, which the one-sided test alone would let through), and, with an incumbent, its AUC
beats the incumbent's by
``promotion_auc_margin`` and its Brier score is not worse (``promotion_brier_tolerance``). With no
champion yet, the benchmark is judged on calibration alone and, when it passes, becomes the champion
the XGBoost model then has to beat: a run on a calibrated history always leaves a registered
champion. Both models are scored from the registry (what is judged is what is served). The decision
and every number behind it are written on the version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pipelines.adapters.model_registry import CHAMPION, DECISION_TAG, PROMOTED, REJECTED, ModelRegistry
from pipelines.settings import StressSettings

# The candidates of a training run in the order the gate judges them: the simplest first, so the
# XGBoost model has to beat the benchmark (or a better champion) to be promoted.
CANDIDATES = ("benchmark_logistic", "xgboost")


@dataclass(frozen=True)
class PromotionPolicy:
    auc_margin: float
    calibration_alpha: float
    min_calibrated_band_share: float
    brier_tolerance: float
    max_mean_pd_ratio: float = 2.0

    @classmethod
    def from_settings(cls, settings: StressSettings) -> PromotionPolicy:
        return cls(settings.promotion_auc_margin, settings.promotion_calibration_alpha,
                   settings.promotion_min_calibrated_band_share, settings.promotion_brier_tolerance,
                   settings.promotion_max_mean_pd_ratio)


@dataclass
class PromotionDecision:
    """The gate's verdict and every number behind it."""

    promote: bool
    incumbent: str
    reasons: list[str]
    challenger: dict[str, float]
    incumbent_metrics: dict[str, float] | None
    policy: PromotionPolicy
    test_rows: int
    extra: dict[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        # The stress test loads only versions whose DECISION_TAG says PROMOTED (see model_registry).
        tags = {DECISION_TAG: PROMOTED if self.promote else "rejected",
                "promotion.incumbent": self.incumbent, "promotion.reasons": " | ".join(self.reasons),
                "promotion.test_rows": str(self.test_rows)}
        tags |= {f"promotion.challenger_{k}": f"{v:.6g}" for k, v in self.challenger.items()}
        tags |= {f"promotion.incumbent_{k}": f"{v:.6g}" for k, v in (self.incumbent_metrics or {}).items()}
        tags |= {f"promotion.policy_{k}": str(v) for k, v in asdict(self.policy).items()}
        return tags | {f"promotion.{k}": v for k, v in self.extra.items()}

    def description(self) -> str:
        verdict = "PROMOTED to champion" if self.promote else "NOT promoted"
        c = self.challenger
        lines = [f"{verdict} against {self.incumbent} on {self.test_rows:,} out-of-time rows.",
                 f"Challenger: AUC {c['auc']:.4f}, Brier {c['brier']:.6f}, bands not underestimating "
                 f"{c['calibrated_band_share']:.0%}, Hosmer-Lemeshow p {c['hosmer_lemeshow_p_value']:.3g}."]
        if self.incumbent_metrics:
            i = self.incumbent_metrics
            lines.append(f"Incumbent: AUC {i['auc']:.4f}, Brier {i['brier']:.6f}.")
        lines += [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines)


def gate_metrics(y: np.ndarray, probability: np.ndarray, alpha: float) -> dict[str, float]:
    from models import validation_metrics as vm

    table = vm.calibration_table(y, probability, alternative="greater")
    observed = float(np.mean(y))
    return {"auc": vm.auc(y, probability), "brier": vm.brier_score(y, probability),
            "calibrated_band_share": vm.calibrated_band_share(table, alpha),
            "mean_pd_ratio": float(np.mean(probability)) / observed if observed > 0 else float("inf"),
            "hosmer_lemeshow_p_value": vm.hosmer_lemeshow(y, probability)[1]}


def decide_promotion(y: np.ndarray, challenger_pd: np.ndarray, incumbent_pd: np.ndarray | None, incumbent: str,
                     policy: PromotionPolicy) -> PromotionDecision:
    """The gate as a pure function of outcomes and the two models' PDs on the same rows."""
    challenger = gate_metrics(y, challenger_pd, policy.calibration_alpha)
    reasons, passed = [], []
    share_ok = challenger["calibrated_band_share"] >= policy.min_calibrated_band_share
    passed.append(share_ok)
    reasons.append(f"calibration: {challenger['calibrated_band_share']:.0%} of bands not rejected for "
                   f"underestimation at {policy.calibration_alpha:g} "
                   f"({'>=' if share_ok else '<'} {policy.min_calibrated_band_share:.0%})")
    level_ok = challenger["mean_pd_ratio"] <= policy.max_mean_pd_ratio
    passed.append(level_ok)
    reasons.append(f"level: mean PD {challenger['mean_pd_ratio']:.2f} x the observed default rate "
                   f"({'<=' if level_ok else '>'} {policy.max_mean_pd_ratio:g})")
    incumbent_metrics = None
    if incumbent_pd is None:
        reasons.append("no incumbent: discrimination not compared")
    else:
        incumbent_metrics = gate_metrics(y, incumbent_pd, policy.calibration_alpha)
        gain = challenger["auc"] - incumbent_metrics["auc"]
        auc_ok = gain >= policy.auc_margin
        brier_ok = challenger["brier"] <= incumbent_metrics["brier"] + policy.brier_tolerance
        passed += [auc_ok, brier_ok]
        reasons.append(f"AUC {challenger['auc']:.4f} vs {incumbent_metrics['auc']:.4f}: gain {gain:+.4f} "
                       f"{'>=' if auc_ok else '<'} margin {policy.auc_margin:g}")
        reasons.append(f"Brier {challenger['brier']:.6f} vs {incumbent_metrics['brier']:.6f} "
                       f"({'not worse' if brier_ok else 'worse'} beyond tolerance {policy.brier_tolerance:g})")
    return PromotionDecision(all(passed), incumbent, reasons, challenger, incumbent_metrics, policy, len(y))


def run_promotion_gate(registry: ModelRegistry, candidates: list[str], test: pd.DataFrame, target: str,
                       policy: PromotionPolicy, context: dict[str, str] | None = None) -> list[PromotionDecision]:
    """Judge the registered ``candidates`` (versions, in order) on ``test``; record and apply each verdict."""
    y = test[target].to_numpy()
    decisions = []
    previous: tuple[str, np.ndarray] | None = None
    for version in candidates:
        challenger_pd = registry.horizon_pd(version, test)
        champion = _standing_champion(registry)
        if champion is not None and champion != version:
            incumbent, incumbent_pd = f"champion v{champion}", registry.horizon_pd(champion, test)
        elif previous is not None:
            incumbent, incumbent_pd = previous
        else:
            incumbent, incumbent_pd = "none", None
        decision = decide_promotion(y, challenger_pd, incumbent_pd, incumbent, policy)
        decision.extra = {"decided_at": datetime.now(UTC).isoformat(), **(context or {})}
        registry.record_decision(version, decision.tags(), decision.description(), decision.promote, champion)
        decisions.append(decision)
        candidate = registry.version_details(version)["candidate"]
        previous = (f"v{version} {candidate} (same training rows)", challenger_pd)
    return decisions


def _standing_champion(registry: ModelRegistry) -> str | None:
    """The champion's version, unless a reviewer rejected it (then it is no yardstick either)."""
    champion = registry.alias_version(CHAMPION)
    if champion is None or registry.version_details(champion)["review"] == REJECTED:
        return None
    return champion
