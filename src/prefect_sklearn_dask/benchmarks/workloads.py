"""The core workloads: seed, grid, tiny and bigdata, described (built, never run here).

A workload is a tuple of small :class:`~.base.Item` plus the dataset handle they read;
:mod:`.work` runs an item, :mod:`.backends` runs a workload's items. The search
workloads are in :mod:`.search_bench`; every rows module can add its own.
"""

from __future__ import annotations

from typing import Any

from prefect_sklearn_dask.benchmarks.base import Item, Workload
from prefect_sklearn_dask.benchmarks.work import grid_pipeline
from prefect_sklearn_dask.ml.data import prepare
from prefect_sklearn_dask.ml.registry import (
    DEFAULT_MODELS,
    build_estimator,
    by_cost,
    get_spec,
    grid_points,
)

GRID_MODELS: tuple[str, ...] = ("svc", "logreg", "knn", "tree", "nb", "lda")


def seed(quick: bool) -> Workload:
    source = "synthetic:n_samples=600" if quick else "synthetic"
    data = prepare(source, None, 0.25, 0)
    items = tuple(Item("fit", m, model=m) for m in by_cost(DEFAULT_MODELS))
    return Workload("seed", f"{len(items)} classifiers on {source} (5000x30 full)", items, data)


def grid(quick: bool) -> Workload:
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
        sklearn=sklearn_grid,
    )


def tiny(quick: bool) -> Workload:
    n = 100 if quick else 1000
    items = tuple(Item("noop", f"noop-{i}") for i in range(n))
    return Workload("tiny", f"{n} near-empty tasks (per-task overhead)", items)


def bigdata(quick: bool) -> Workload:
    # 420_000 x 30 float64 = ~100 MB (quick: ~10 MB)
    rows = 42_000 if quick else 420_000
    source = f"synthetic:n_samples={rows},n_features=30"
    data = prepare(source, None, 0.25, 0)
    parts = 8
    items = tuple(Item("big", f"nb-cols{i}", fold=i, folds=parts) for i in range(parts))
    mb = rows * 30 * 8 / 1e6
    return Workload("bigdata", f"{parts} tasks on one {mb:.0f} MB dataset ({source})", items, data)


BUILDERS = {"seed": seed, "grid": grid, "tiny": tiny, "bigdata": bigdata}


def sklearn_grid(workload: Workload) -> Any:
    """``GridSearchCV`` doing exactly the grid workload's fits (refit off)."""
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
