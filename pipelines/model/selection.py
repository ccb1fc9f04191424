"""Which registered PD model version the stress test (and the daily monitoring) uses, and why.

Every training run registers the benchmark logistic model and the XGBoost model and runs both through
the promotion gate (:mod:`pipelines.model.promotion`), so the model of a stress test is always a
registered version with its evidence in MLflow. In order (docs/model_governance.md):

1. the version holding the reviewer's ``approved`` alias (a reviewer's pin, even over the gate's
   verdict; an ``approved`` version also tagged ``review=rejected`` is a contradiction, an error);
2. the ``champion`` (the gate's choice), unless a reviewer tagged it ``review=rejected``;
3. with no standing champion: ``require_champion`` on (the default on the aws target) fails the run
   with :class:`NoChampion`; off (the local default), the latest other version the gate promoted and
   no reviewer rejected is used, and the note, the log and the demo say ``FALLBACK`` and why. With
   no such version either, the run fails whatever the setting.

A configured tracking store that is missing or unreachable is
:class:`pipelines.adapters.model_registry.RegistryUnavailable` naming the URI, never "no champion".
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.adapters.model_registry import (
    APPROVED,
    CHAMPION,
    REJECTED,
    ModelRegistry,
)
from pipelines.adapters.object_store import read_uri_bytes

DEMO_HISTORY_LOANS = 30_000
DEMO_HISTORY_SEED = 7

log = logging.getLogger(__name__)


def performance_history_bytes(uri: str, aws_region: str) -> bytes:
    """The bytes of the performance history Parquet file (the seeded synthetic one is generated once)."""
    if not uri.startswith(("s3://", "file://")) and not Path(uri).exists():
        from pipelines.data.synthetic import generate_performance_history

        log.info("generating the seeded synthetic performance history (%s loans) at %s", DEMO_HISTORY_LOANS, uri)
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        generate_performance_history(DEMO_HISTORY_LOANS, DEMO_HISTORY_SEED).to_parquet(uri)
    return read_uri_bytes(uri, aws_region)


def performance_history(uri: str, aws_region: str) -> tuple[pd.DataFrame, str]:
    """The performance history as a frame and where it came from."""
    return pd.read_parquet(io.BytesIO(performance_history_bytes(uri, aws_region))), uri


class NoChampion(ValueError):
    """No registered version may be used (a ValueError: a retry cannot help)."""


def _review(info: dict[str, Any]) -> str:
    detail = ", ".join(f"{k.removeprefix('review_')} {info[k]!r}" for k in ("review_by", "review_reason") if info[k])
    return f"review={info['review']}" + (f" ({detail})" if detail else "")


def _gate(info: dict[str, Any]) -> str:
    return (f"gate {info['gate_decision'] or 'never judged'} against {info['gate_incumbent']} at "
            f"{info['gate_decided_at']} (out-of-time AUC {info['oot_auc']}: {info['gate_reasons']})")


def _chosen(info: dict[str, Any], alias: str, note: str) -> dict[str, Any]:
    return {**info, "alias": alias, "note": note}


def resolve_stress_model(registry: ModelRegistry, require_champion: bool) -> dict[str, Any]:
    """The version to use (:meth:`ModelRegistry.version_details` plus ``alias`` and ``note``: which and why)."""
    where = f"{registry.model_name} in {registry.tracking_uri}"
    train = "run pd_model_training (make demo does) so the promotion gate registers and promotes a version"
    if not registry.check_exists():
        raise NoChampion(f"no MLflow tracking store yet at {registry.tracking_uri}, so no registered PD model: {train}")
    approved = registry.alias_version(APPROVED)
    if approved is not None:
        info = registry.version_details(approved)
        if info["review"] == REJECTED:
            raise NoChampion(f"version {approved} of {where} holds the reviewer's {APPROVED!r} alias and is tagged "
                             f"{_review(info)}: remove one of the two")
        return _chosen(info, APPROVED, f"approved by a reviewer ({APPROVED!r} alias); {_gate(info)}")
    champion = registry.alias_version(CHAMPION)
    if champion is not None:
        info = registry.version_details(champion)
        if info["review"] != REJECTED:
            return _chosen(info, CHAMPION, f"the promotion gate's {CHAMPION}: {_gate(info)}")
        missing = f"the {CHAMPION} v{champion} of {where} was rejected by a reviewer ({_review(info)})"
    else:
        missing = f"no {CHAMPION} alias on {where}"
    if require_champion:
        raise NoChampion(f"{missing} and STRESS_REQUIRE_CHAMPION is on: {train}, or a reviewer sets the "
                         f"{APPROVED!r} alias on a version")
    for version in registry.promoted_versions():
        info = registry.version_details(version)
        if version != champion and info["review"] != REJECTED:
            note = (f"FALLBACK: {missing}; using v{version}, the latest other version the gate promoted and no "
                    f"reviewer rejected (STRESS_REQUIRE_CHAMPION is off); {_gate(info)}")
            log.warning("%s", note)
            return _chosen(info, "none", note)
    raise NoChampion(f"{missing}, and no other version of it passed the promotion gate: {train}")


def describe_model(info: dict[str, Any]) -> str:
    """One line for logs and the demo: name, version, alias, flavour."""
    return f"{info['name']} v{info['version']} (alias {info['alias']}, flavour {info['flavour']})"
