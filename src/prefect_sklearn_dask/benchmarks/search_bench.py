"""The ``search`` benchmark: one grid search of several models, three ways, same fits.

* ``project``: ``train_flow(search="grid", runner="dask", address=...)``, the whole flow
  run (its fixed cost, one ``search-<model>`` task run per model, fits as plain Dask
  work, the winners' refits, artifacts);
* ``sklearn-dask``: one ``GridSearchCV`` over every model's grid (a list of grids, refit
  off) under joblib's dask backend with ``scatter=[X, y]``;
* ``raw-dask``: ``client.map(fit_one, ...)`` of exactly the project's candidate x fold
  fits: the practical limit.

All on one warm ``LocalCluster`` whose workers have loaded the data; repeats are the
outer loop. ``bytes/fit`` is what the scheduler sent its workers, per fit.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from prefect_sklearn_dask.benchmarks.backends import scheduler_bytes
from prefect_sklearn_dask.ml.data import DatasetRef, load_split, prepare
from prefect_sklearn_dask.ml.preprocess import make_preprocessor
from prefect_sklearn_dask.ml.registry import build_estimator, get_spec
from prefect_sklearn_dask.ml.search import FitJob, fit_one, plan_search, round_jobs
from prefect_sklearn_dask.ml.search_space import parse_space

CV, SEED = 3, 0
SIZES: dict[str, dict[str, Any]] = {
    # 36 candidates x 3 folds = 108 fits
    "small": {
        "dataset": "synthetic:n_samples=2000,n_features=20",
        "space": {
            "logreg": {"C": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]},
            "knn": {"n_neighbors": [3, 5, 11, 21, 41], "weights": ["uniform", "distance"]},
            "tree": {"max_depth": [2, 4, 6, 8, 12, None]},
            "svc": {"C": [0.5, 1.0, 5.0, 20.0], "gamma": ["scale", 0.01]},
            "nb": {"var_smoothing": [1e-11, 1e-9, 1e-7, 1e-5]},
            "lda": {"solver": ["svd", "lsqr"]},
        },
    },
    # 334 candidates x 3 folds = 1,002 fits
    "large": {
        "dataset": "synthetic:n_samples=2000,n_features=20",
        "space": {
            "logreg": {"C": [10.0 ** (e / 2) for e in range(-8, 7)], "tol": [1e-4, 1e-3]},
            "knn": {"n_neighbors": list(range(1, 101, 2)), "weights": ["uniform", "distance"]},
            "tree": {"max_depth": [*range(1, 30), None], "min_samples_leaf": [1, 2, 5, 10]},
            "svc": {"C": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0], "gamma": ["scale", 0.01, 0.1]},
            "nb": {"var_smoothing": [10.0 ** -(e / 2) for e in range(6, 28)]},
            "lda": {"solver": ["lsqr"], "shrinkage": [None, *(i / 40 for i in range(40))]},
        },
    },
}
QUICK = {
    "dataset": "synthetic:n_samples=600,n_features=10",
    "space": {
        "logreg": {"C": [0.1, 1.0, 10.0]},
        "knn": {"n_neighbors": [3, 5, 11]},
        "nb": {"var_smoothing": [1e-9, 1e-7]},
        "tree": {"max_depth": [3, None]},
        "lda": {"solver": ["svd", "lsqr"]},
    },
}
BACKENDS = ("project", "sklearn-dask", "raw-dask")


def jobs_for(ref: DatasetRef, space: dict[str, Any]) -> list[FitJob]:
    """The project's grid fits for ``space`` (the same ones every backend does)."""
    jobs: list[FitJob] = []
    for model, model_space in parse_space(space, "grid").items():
        plan = plan_search(
            model, ref, "grid", model_space, n_iter=1, cv=CV, seed=SEED, metric="f1_macro"
        )
        jobs += round_jobs(plan, plan.rounds[0], range(len(plan.params)))
    return jobs


def sklearn_search(ref: DatasetRef, space: dict[str, Any]):
    """One ``GridSearchCV`` whose list of grids is every model's grid (same pipelines)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    X = load_split(ref).X_train
    grids = [
        {
            "preprocess": [make_preprocessor(X, get_spec(model).scale)],
            "classifier": [build_estimator(model, SEED)],
            **{f"classifier__{k}": list(v) for k, v in model_space.items()},
        }
        for model, model_space in parse_space(space, "grid").items()
    ]
    pipeline = Pipeline([("preprocess", "passthrough"), ("classifier", "passthrough")])
    folds = StratifiedKFold(CV, shuffle=True, random_state=SEED)
    return GridSearchCV(pipeline, grids, scoring="f1_macro", cv=folds, refit=False, n_jobs=-1)


def run_project(client, ref, size: dict[str, Any], storage: str) -> dict[str, Any]:
    from prefect_sklearn_dask.flow.train_flow import train_flow

    summary = train_flow(
        dataset=size["dataset"],
        models=list(size["space"]),
        runner="dask",
        address=client.scheduler.address,
        search="grid",
        search_space=size["space"],
        cv=CV,
        seed=SEED,
        storage=storage,
        cache=False,
        performance_report=False,
    )
    return {"fits": summary["cache"]["fits"], "flow_run_id": summary["flow_run_id"]}


def run_sklearn_dask(client, ref, size: dict[str, Any], storage: str) -> dict[str, Any]:
    from joblib import parallel_config

    split = load_split(ref)
    search = sklearn_search(ref, size["space"])
    with client.as_current(), parallel_config("dask", scatter=[split.X_train, split.y_train]):
        search.fit(split.X_train, split.y_train)
    return {"fits": len(search.cv_results_["params"]) * CV}


def run_raw_dask(client, ref, size: dict[str, Any], storage: str) -> dict[str, Any]:
    jobs = jobs_for(ref, size["space"])
    futures = client.map(fit_one, [ref] * len(jobs), jobs, pure=False)
    client.gather(futures)
    del futures
    return {"fits": len(jobs)}


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "project": run_project,
    "sklearn-dask": run_sklearn_dask,
    "raw-dask": run_raw_dask,
}


def measure(client, backend: str, ref, size: dict[str, Any], storage: str) -> dict[str, Any]:
    before = client.run_on_scheduler(scheduler_bytes)
    started = time.perf_counter()
    out = RUNNERS[backend](client, ref, size, storage)
    wall = time.perf_counter() - started
    sent = client.run_on_scheduler(scheduler_bytes) - before
    return {"backend": backend, "wall": wall, "bytes_per_fit": sent / out["fits"], **out}


def run(
    client, sizes: dict[str, dict[str, Any]], repeats: int, storage: str, log=print
) -> list[dict[str, Any]]:
    """Every backend on every size, ``repeats`` times; one row per (size, backend)."""
    refs = {name: prepare(size["dataset"], None, 0.25, SEED) for name, size in sizes.items()}
    client.run(_warm, list(refs.values()))
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, size in sizes.items():  # one untimed round: imports, fold indices, JIT caches
        measure(client, "raw-dask", refs[name], size, storage)
    for repeat in range(repeats):
        for name, size in sizes.items():
            for backend in BACKENDS:
                got = measure(client, backend, refs[name], size, storage)
                log(
                    f"{name:<6} {backend:<13} repeat {repeat + 1}: {got['wall']:7.2f} s "
                    f"({got['fits']} fits, {got['bytes_per_fit']:.0f} B/fit)"
                )
                samples.setdefault((name, backend), []).append(got)
    rows = []
    for (name, backend), got in samples.items():
        raw = statistics.median(g["wall"] for g in samples[(name, "raw-dask")])
        wall = statistics.median(g["wall"] for g in got)
        rows.append(
            {
                "size": name,
                "backend": backend,
                "fits": got[0]["fits"],
                "median_s": round(wall, 3),
                "walls": [round(g["wall"], 3) for g in got],
                "vs_raw_dask": round(wall / raw, 2),
                "bytes_per_fit": round(statistics.median(g["bytes_per_fit"] for g in got)),
            }
        )
    return rows


def _warm(refs: list[DatasetRef]) -> None:
    import prefect.task_engine  # noqa: F401

    for ref in refs:
        load_split(ref)


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table for the README and the note."""
    lines = [
        "| size | backend | fits | median wall | vs raw Dask | bytes/fit |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['size']} | {r['backend']} | {r['fits']} | {r['median_s']:.2f} s | "
        f"{r['vs_raw_dask']:.2f}x | {r['bytes_per_fit']} |"
        for r in rows
    ]
    return "\n".join(lines)
