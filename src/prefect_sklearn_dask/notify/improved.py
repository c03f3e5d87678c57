"""The ``train-flow.best-model.improved`` event: a run found a better model than any before it.

"Better" compares the held-out score (the run's ranking metric) of this run's best model
with the highest one recorded by earlier runs for the same dataset (its sha256
fingerprint) and the same metric. Earlier runs are read from the model store's
manifests, ``<storage>/train-flow/<flow-run-id>/best-model.json``, so only runs that
wrote to the same storage count. The first run for a dataset and metric has nothing to
beat and emits nothing.

The event's resource is the dataset + metric; inside a flow run Prefect adds the run,
its flow and its deployment as related resources, which is what a deployment's
automation matches on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect_sklearn_dask.masking import mask

EVENT = "train-flow.best-model.improved"
MANIFEST = "best-model.json"


def previous_best(
    runs_dir: Path, dataset_sha256: str, metric: str, exclude_run: str
) -> dict[str, Any] | None:
    """The manifest with the highest ``metric`` for this dataset among other runs, or None."""
    best: dict[str, Any] | None = None
    for path in runs_dir.glob(f"*/{MANIFEST}"):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a half-copied or foreign file is not a record
        if (
            manifest.get("flow_run_id") == exclude_run
            or manifest.get("dataset_sha256") != dataset_sha256
            or manifest.get("metric") != metric
        ):
            continue
        score = (manifest.get("scores") or {}).get(metric)
        if score is None:
            continue
        if best is None or score > best["scores"][metric]:
            best = manifest
    return best


def improvement(manifest: dict[str, Any], runs_dir: Path) -> dict[str, Any] | None:
    """The event payload when ``manifest`` beats every earlier run, else None."""
    metric = manifest["metric"]
    previous = previous_best(runs_dir, manifest["dataset_sha256"], metric, manifest["flow_run_id"])
    score = manifest["scores"].get(metric)
    if previous is None or score is None or score <= previous["scores"][metric]:
        return None
    return {
        "dataset": mask(manifest["dataset"]),
        "dataset_sha256": manifest["dataset_sha256"],
        "metric": metric,
        "model": manifest["model"],
        "score": score,
        "previous": {
            "model": previous["model"],
            "score": previous["scores"][metric],
            "flow_run_id": previous["flow_run_id"],
        },
    }


def announce_improvement(manifest: dict[str, Any], runs_dir: Path, logger: Any) -> bool:
    """Emit :data:`EVENT` when this run's best model is the best yet; True if it did."""
    from prefect.events import emit_event

    payload = improvement(manifest, runs_dir)
    if payload is None:
        return False
    emit_event(
        event=EVENT,
        resource={
            "prefect.resource.id": (
                f"prefect-sklearn-dask.dataset.{payload['dataset_sha256'][:16]}.{payload['metric']}"
            ),
            "prefect.resource.name": f"{Path(payload['dataset']).name} ({payload['metric']})",
        },
        payload=payload,
    )
    previous = payload["previous"]
    logger.info(
        f"better model: {payload['model']} {payload['metric']}={payload['score']:.4f} beats "
        f"{previous['model']} {previous['score']:.4f} (event {EVENT})"
    )
    return True
