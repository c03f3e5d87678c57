"""One model on partitioned data: fit on the training rows, score on the held-out rows,
all on the cluster; the caller gets a :class:`~.ml.evaluate.TrainReport` (the in-memory
path's report: same table, chart and stored model) and nothing else."""

from __future__ import annotations

import time
from typing import Any

import dask
import pandas as pd

from prefect_sklearn_dask.ml.errors import ModelError
from prefect_sklearn_dask.ml.evaluate import TrainReport
from prefect_sklearn_dask.ml.partitioned import metrics, split
from prefect_sklearn_dask.ml.partitioned.engines import ENGINES, TRAIN_TIMEOUT
from prefect_sklearn_dask.ml.partitioned.model import Features, PartitionedModel
from prefect_sklearn_dask.ml.partitioned.profile import DataProfile
from prefect_sklearn_dask.ml.partitioned.source import CATEGORY, PartitionedSource
from prefect_sklearn_dask.ml.partitioned.tree import fetch, tree_reduce


def features_of(source: PartitionedSource, profile: DataProfile) -> Features:
    levels = dict(profile.levels)
    numeric = [c for c in source.features if source.kind(c) != CATEGORY]
    return Features(numeric, {c: list(levels[c]) for c in source.features if c in levels})


def marked(source: PartitionedSource, profile: DataProfile, seed: int, test_size: float):
    """The lazy frame with fixed categories and the ``__test__`` mark, per partition."""
    frame = source.frame(profile.dtypes(source.target))
    meta = frame._meta.assign(**{split.TEST: pd.Series([], dtype=bool)})
    return frame.map_partitions(split.mark, seed, test_size, meta=meta)


def side(frame, test: bool):
    meta = frame._meta.drop(columns=[split.TEST])
    return frame.map_partitions(split.side, test, meta=meta)


def score_partition(frame: pd.DataFrame, model: PartitionedModel, target: str):
    y = frame[target].cat.codes.to_numpy()
    proba = model.predict_proba(frame) if len(frame) else None
    if proba is None:
        import numpy as np

        proba = np.zeros((0, model.n_classes))
    return metrics.partition_stats(y, proba, model.n_classes)


def score(client, test, model: PartitionedModel, target: str) -> metrics.ScoreStats:
    """Held-out statistics reduced on the workers (the model is sent once, not per task)."""
    [shared] = client.scatter([model], broadcast=False, hash=False)
    parts = [dask.delayed(score_partition)(p, shared, target) for p in test.to_delayed()]
    return fetch(client, tree_reduce(metrics.total, parts))


def train_and_score(
    client,
    source: PartitionedSource,
    profile: DataProfile,
    model: str,
    seed: int = 0,
    test_size: float = 0.25,
    params: dict[str, Any] | None = None,
    timeout: float = TRAIN_TIMEOUT,
) -> TrainReport:
    """Fit ``model`` (``xgb`` or ``sgd``) on the training rows and score it on the rest."""
    if model not in ENGINES:
        raise ModelError(f"{model!r} does not train on partitioned data; use {', '.join(ENGINES)}")
    started_at = time.time()
    features = features_of(source, profile)
    frame = marked(source, profile, seed, test_size)
    started = time.perf_counter()
    fitted = ENGINES[model](
        client,
        side(frame, test=False),
        features,
        source.target,
        profile.n_classes,
        seed,
        params,
        timeout,
    )
    fit_seconds = time.perf_counter() - started
    stats = score(client, side(frame, test=True), fitted, source.target)
    predict_seconds = time.perf_counter() - started - fit_seconds
    scores = metrics.finish(stats, profile.n_classes)
    return TrainReport(
        model=model,
        params=dict(params or {}),
        accuracy=scores["accuracy"],
        f1_macro=scores["f1_macro"],
        roc_auc=scores["roc_auc"],
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
        n_train=profile.n_rows - scores["n_test"],
        n_test=scores["n_test"],
        confusion=scores["confusion"],
        roc_curves=scores["roc_curves"],
        started_at=started_at,
        finished_at=time.time(),
        estimator=fitted,
    )
