"""Which PD model the stress test uses: the MLflow champion when there is one, else the benchmark.

The benchmark macro-linked logistic model is estimated from the loan performance history (the
configured one, or on embedded defaults a seeded synthetic history) once, and its coefficients are
kept in the object store under the SHA-256 of the history file's bytes: a stress run finds them by
hashing the file, never re-estimates the model, and every simulation batch uses exactly the same
coefficients.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from models.pd_logistic import MacroLogisticPD
from models.projection import PDFunction
from pipelines.adapters.model_registry import ModelRegistry, load_quarterly_pd_function
from pipelines.adapters.object_store import ObjectStore, read_uri_bytes

DEMO_HISTORY_LOANS = 30_000
DEMO_HISTORY_SEED = 7
BENCHMARK_PREFIX = "models/benchmark_logistic"

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


def benchmark_model_info(history_uri: str, aws_region: str, store: ObjectStore) -> dict[str, Any]:
    """Find the benchmark logistic model of this history (fit and keep it the first time); how to load it."""
    data = performance_history_bytes(history_uri, aws_region)
    history_hash = hashlib.sha256(data).hexdigest()[:24]
    key = f"{BENCHMARK_PREFIX}/{history_hash}.json"
    if not store.exists(key):
        from pipelines.data.features import history_pd_features

        history = pd.read_parquet(io.BytesIO(data))
        log.info("fitting the benchmark logistic PD model once on %s (%s rows, sha256 %s)", history_uri,
                 f"{len(history):,}", history_hash)
        model = MacroLogisticPD().fit(history_pd_features(history), history["DefaultFlag"].to_numpy())
        store.put_bytes(key, json.dumps({"coefficients": model.coefficient_table(), "history_source": history_uri,
                                         "history_rows": len(history)}, indent=2).encode())
    return {"kind": "benchmark_logistic", "name": MacroLogisticPD.name, "version": history_hash,
            "object_key": key, "history_source": history_uri}


class NoChampion(ValueError):
    """``require_champion`` is on and the registry has no champion (a ValueError: a retry cannot help)."""


def resolve_stress_model(registry: ModelRegistry, history_uri: str, aws_region: str,
                         store: ObjectStore, require_champion: bool = False) -> dict[str, Any]:
    """The champion from the MLflow registry if one exists, else the benchmark; ``note`` says which and why.

    With ``require_champion`` a missing champion is :class:`NoChampion`, never the benchmark.
    """
    champion = registry.champion_info()
    if champion is not None:
        note = (f"MLflow champion {champion['name']} v{champion['version']}: promoted by the gate against "
                f"{champion['gate_incumbent']} at {champion['gate_decided_at']} (out-of-time AUC "
                f"{champion['oot_auc']}; {champion['gate_reasons']})")
        return {"kind": "mlflow_champion", **champion, "note": note}
    if require_champion:
        raise NoChampion(f"no champion alias on {registry.model_name} in {registry.tracking_uri} and "
                         "STRESS_REQUIRE_CHAMPION is on: run pd_model_training until the gate promotes a version")
    info = benchmark_model_info(history_uri, aws_region, store)
    info["note"] = "no champion in the MLflow registry: using the benchmark macro-linked logistic PD model"
    return info


def estimated_on_history(info: dict[str, Any]) -> bool:
    """Whether the resolved model was estimated on the whole performance history (the benchmark is), so a
    back-test on that history is in-sample; a champion was judged on rows held out of its training."""
    return info["kind"] == "benchmark_logistic"


def load_pd_function(info: dict[str, Any], store: ObjectStore) -> PDFunction:
    """The quarterly PD function a resolved model info points at."""
    if info["kind"] == "benchmark_logistic":
        table = json.loads(store.get_bytes(info["object_key"]))["coefficients"]
        return MacroLogisticPD.from_coefficients(table)
    return load_quarterly_pd_function(info)
