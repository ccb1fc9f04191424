"""Which PD model the stress test uses: the MLflow champion when there is one, else the benchmark.

The benchmark macro-linked logistic model is estimated from the loan performance history (the
configured one, or on embedded defaults a seeded synthetic history) and its coefficients are kept in
the object store under the hash of the history they were estimated on, so every simulation batch
uses exactly the same model and a re-run does not re-estimate it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from models.pd_logistic import MacroLogisticPD
from models.projection import PDFunction
from pipelines.object_store import ObjectStore, open_object_store
from pipelines.settings import StressSettings

DEMO_HISTORY_LOANS = 30_000
DEMO_HISTORY_SEED = 7


def performance_history(settings: StressSettings) -> tuple[pd.DataFrame, str]:
    """The performance history and where it came from (generated once on embedded defaults)."""
    path = settings.resolved_performance_history_uri
    if not path.startswith(("s3://", "file://")) and not Path(path).exists():
        from pipelines.synthetic import generate_performance_history

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        generate_performance_history(DEMO_HISTORY_LOANS, DEMO_HISTORY_SEED).to_parquet(path)
    if path.startswith("s3://"):
        import io

        from pipelines.object_store import read_uri_bytes

        return pd.read_parquet(io.BytesIO(read_uri_bytes(path, settings.aws_region))), path
    return pd.read_parquet(path.removeprefix("file://")), path


def benchmark_model_info(settings: StressSettings) -> dict[str, Any]:
    """Fit (or find) the benchmark logistic model; return how to load it."""
    from pipelines.features import history_pd_features
    from pipelines.snapshots import content_hash

    history, source = performance_history(settings)
    features = history_pd_features(history)
    import pyarrow as pa

    history_hash = content_hash(pa.Table.from_pandas(
        features.assign(DefaultFlag=history["DefaultFlag"]), preserve_index=False))[:24]
    store = open_object_store(settings.resolved_object_store_uri, settings.aws_region)
    key = f"models/benchmark_logistic/{history_hash}.json"
    if not store.exists(key):
        model = MacroLogisticPD().fit(features, history["DefaultFlag"].to_numpy())
        store.put_bytes(key, json.dumps({"coefficients": model.coefficient_table(), "history_source": source,
                                         "history_rows": len(history)}, indent=2).encode())
    return {"kind": "benchmark_logistic", "name": MacroLogisticPD.name, "version": history_hash,
            "object_key": key, "history_source": source}


def resolve_stress_model(settings: StressSettings) -> dict[str, Any]:
    """The champion from the MLflow registry if one exists, else the benchmark (and the reason)."""
    from pipelines.model_registry import champion_info

    champion = champion_info(settings)
    if champion is not None:
        return {"kind": "mlflow_champion", **champion}
    info = benchmark_model_info(settings)
    info["note"] = "no champion in the MLflow registry: using the benchmark macro-linked logistic PD model"
    return info


def load_pd_function(info: dict[str, Any], store: ObjectStore) -> PDFunction:
    """The quarterly PD function a resolved model info points at."""
    if info["kind"] == "benchmark_logistic":
        table = json.loads(store.get_bytes(info["object_key"]))["coefficients"]
        return MacroLogisticPD.from_coefficients(table)
    from pipelines.model_registry import load_quarterly_pd_function

    return load_quarterly_pd_function(info)
