"""The benchmark workloads: the same small work items, whatever backend runs them.

Every backend (a loop, Prefect on threads or Dask, raw Dask, joblib) executes the same
:func:`run_item` on the same :class:`Item` list, so their walls are comparable. Items
carry a small :class:`~.ml.data.DatasetRef`, never data: each process loads a dataset
once and reuses it (``bigdata`` checks that, counting loads per process). ``search`` is a
group of workloads (:mod:`.search_bench`) whose items are the project's own search fits.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from prefect_sklearn_dask.benchmarks import search_bench
from prefect_sklearn_dask.benchmarks.search_bench import METRIC
from prefect_sklearn_dask.ml.data import DatasetRef, load_split, prepare
from prefect_sklearn_dask.ml.registry import (
    DEFAULT_MODELS,
    build_estimator,
    by_cost,
    get_spec,
    grid_points,
)

WORKLOADS: tuple[str, ...] = ("seed", "grid", "tiny", "bigdata", "search")
GRID_MODELS: tuple[str, ...] = ("svc", "logreg", "knn", "tree", "nb", "lda")


@dataclass(frozen=True)
class Item:
    """One unit of work: small, hashable, cheap to pickle."""

    kind: str  # "fit" | "fold" | "noop" | "big" | "search"
    label: str
    model: str = ""
    params: tuple[tuple[str, Any], ...] = ()
    fold: int = 0
    folds: int = 0


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    items: tuple[Item, ...]
    data: DatasetRef | None = None
    seed: int = 0
    # Only these backends run it (None: the rules in backends.applies); the search group's.
    backends: tuple[str, ...] | None = None
    # search workloads: {"source", "space", "halving_n_iter"} (see search_bench)
    search: dict[str, Any] | None = None

    @property
    def dataset_bytes(self) -> int:
        """Size of the feature matrix (float64), 0 when the workload has none."""
        return 0 if self.data is None else self.data.n_rows * self.data.n_features * 8


# Worker side ---------------------------------------------------------------------------

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
        score = fit_one(data, FitJob(item.model, dict(item.params), fold, METRIC, 0)).score
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


# Definitions ---------------------------------------------------------------------------


def _seed(quick: bool) -> Workload:
    source = "synthetic:n_samples=600" if quick else "synthetic"
    data = prepare(source, None, 0.25, 0)
    items = tuple(Item("fit", m, model=m) for m in by_cost(DEFAULT_MODELS))
    return Workload("seed", f"{len(items)} classifiers on {source} (5000x30 full)", items, data)


def _grid(quick: bool) -> Workload:
    models = ("logreg", "knn", "tree", "nb") if quick else GRID_MODELS
    folds = 3 if quick else 5
    source = "synthetic:n_samples=1000,n_features=20" if quick else "synthetic:n_samples=2000"
    data = prepare(source, None, 0.25, 0)
    items = tuple(
        Item(
            "fold",
            f"{m}[{','.join(f'{k}={v}' for k, v in p.items())}]#{f}",
            model=m,
            params=tuple(sorted(p.items())),
            fold=f,
            folds=folds,
        )
        for m in by_cost(models)
        for p in grid_points(m)
        for f in range(folds)
    )
    return Workload(
        "grid",
        f"{len(items)} fits: grids of {','.join(models)} x {folds} CV folds on {source}",
        items,
        data,
    )


def _tiny(quick: bool) -> Workload:
    n = 100 if quick else 1000
    items = tuple(Item("noop", f"noop-{i}") for i in range(n))
    return Workload("tiny", f"{n} near-empty tasks (per-task overhead)", items)


def _bigdata(quick: bool) -> Workload:
    # 420_000 x 30 float64 = ~100 MB (quick: ~10 MB)
    rows = 42_000 if quick else 420_000
    source = f"synthetic:n_samples={rows},n_features=30"
    data = prepare(source, None, 0.25, 0)
    parts = 8
    items = tuple(Item("big", f"nb-cols{i}", fold=i, folds=parts) for i in range(parts))
    mb = rows * 30 * 8 / 1e6
    return Workload("bigdata", f"{parts} tasks on one {mb:.0f} MB dataset ({source})", items, data)


def search_item(job) -> Item:
    """A search fit (:class:`~.ml.search.FitJob`) as an item: model, params, fold."""
    from prefect_sklearn_dask.ml.search import short_params

    return Item(
        "search",
        f"{job.model}[{short_params(job.params)}]#{job.fold.index}",
        model=job.model,
        params=tuple(job.params.items()),
        fold=job.fold.index,
        folds=job.fold.cv,
    )


BUILDERS = {"seed": _seed, "grid": _grid, "tiny": _tiny, "bigdata": _bigdata}


def expand(names: list[str], quick: bool) -> list[str]:
    """The workloads to build: ``search`` stands for its group (:func:`.search_bench.names`)."""
    out: list[str] = []
    for name in names:
        out += search_bench.names(quick) if name == search_bench.GROUP else [name]
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=16)
def build(name: str, quick: bool = False) -> Workload:
    """The workload ``name`` (validated by the CLI, expanded), built once per process."""
    if name in BUILDERS:
        return BUILDERS[name](quick)
    return search_bench.build(name, quick)


def sklearn_grid(workload: Workload):
    """``GridSearchCV`` doing exactly the grid or a search workload's fits, else None."""
    if workload.search is not None:
        return search_bench.sklearn_search(workload)
    if workload.name != "grid":
        return None
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    first = workload.items[0]
    models = list(dict.fromkeys(item.model for item in workload.items))
    param_grid = [
        {
            "clf": [build_estimator(m, workload.seed)],
            **{f"clf__{k}": list(v) for k, v in get_spec(m).grid.items()},
        }
        for m in models
    ]
    cv = StratifiedKFold(first.folds, shuffle=True, random_state=workload.seed)
    return GridSearchCV(
        grid_pipeline(models[0], workload.seed), param_grid, cv=cv, refit=False, n_jobs=None
    )
