"""The work itself: one :class:`~.base.Item` run where a backend puts it (worker side).

Every backend (a loop, Prefect on threads or Dask, raw Dask, joblib) executes the same
:func:`run_item` on the same items, so their walls are comparable. Items carry a small
:class:`~.ml.data.DatasetRef`, never data: each process loads a dataset once and reuses
it (``bigdata`` checks that, counting loads per process).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_sklearn_dask.benchmarks.base import Item
from prefect_sklearn_dask.ml.data import DatasetRef, load_split
from prefect_sklearn_dask.ml.registry import build_estimator

SEARCH_METRIC = "f1_macro"  # what the search items score (search_bench.METRIC)

_LOADED: set[DatasetRef] = set()
_LOADED_LOCK = threading.Lock()


def _split(data: DatasetRef) -> tuple[Any, bool]:
    """The dataset's split and whether this call was the process's first load of it."""
    with _LOADED_LOCK:
        first = data not in _LOADED
        _LOADED.add(data)
    return load_split(data), first


@functools.lru_cache(maxsize=8)
def _folds(data: DatasetRef, folds: int, seed: int) -> list[tuple[Any, Any]]:
    from sklearn.model_selection import StratifiedKFold

    split = load_split(data)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return list(cv.split(split.X_train, split.y_train))


def grid_pipeline(model: str, seed: int, params: dict[str, Any] | None = None):
    """Scaler + classifier: what both the fold items and ``GridSearchCV`` fit."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [("scale", StandardScaler()), ("clf", build_estimator(model, seed, params or {}))]
    )


def run_item(item: Item, data: DatasetRef | None, seed: int = 0) -> dict[str, Any]:
    """Do one item; return only small numbers (never a fitted model) and where it ran."""
    started = time.perf_counter()
    first_load = False
    score: float | None = None
    if item.kind == "fit":
        from prefect_sklearn_dask.ml.evaluate import train_and_evaluate

        _, first_load = _split(data)
        score = train_and_evaluate(item.model, data, seed=seed, params=dict(item.params)).f1_macro
    elif item.kind == "fold":
        split, first_load = _split(data)
        train, test = _folds(data, item.folds, seed)[item.fold]
        pipeline = grid_pipeline(item.model, seed, dict(item.params))
        pipeline.fit(split.X_train.iloc[train], split.y_train[train])
        score = float(pipeline.score(split.X_train.iloc[test], split.y_train[test]))
    elif item.kind == "search":
        from prefect_sklearn_dask.ml.search import FitJob, Fold, fit_one

        _, first_load = _split(data)
        fold = Fold(item.folds, item.fold, seed)
        job = FitJob(item.model, dict(item.params), fold, SEARCH_METRIC, 0)
        score = fit_one(data, job).score
    elif item.kind == "big":
        from sklearn.naive_bayes import GaussianNB

        split, first_load = _split(data)
        columns = split.X_train.columns[item.fold :: item.folds]
        model = GaussianNB().fit(split.X_train[columns], split.y_train)
        score = float(model.score(split.X_test[columns], split.y_test))
    elif item.kind != "noop":
        raise ValueError(f"unknown item kind {item.kind!r}")
    return {
        "label": item.label,
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
        "first_load": first_load,
        "score": score,
    }


def warm_process(refs: list[DatasetRef]) -> int:
    """Imports and dataset loads done before timing (run on every worker)."""
    import prefect.task_engine  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import prefect_sklearn_dask.ml.evaluate  # noqa: F401

    for ref in refs:
        _split(ref)
    return os.getpid()


@task(
    name="bench-item",
    task_run_name="{item.label}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def bench_item(item: Item, data: DatasetRef | None, seed: int = 0) -> dict[str, Any]:
    """The Prefect task every Prefect backend runs: one work item."""
    return run_item(item, data, seed)
