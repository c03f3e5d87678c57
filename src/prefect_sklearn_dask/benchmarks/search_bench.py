"""The ``search`` workloads of ``benchmarks/compare.py``: one grid search, many ways, same fits.

``--workload search`` runs four workloads on the suite's warm cluster (``--quick``: the
first only, 36 fits):

* ``search``: 6 models' grids x 3 folds = 108 fits on 2000x20 rows, every backend:
  the project's ``train_flow(search="grid")`` (``train-flow-search``), ``GridSearchCV``
  under joblib's dask backend, dask-ml's ``GridSearchCV``, raw Dask ``client.map`` of
  the same fits, the fits run one by one (``sequential``, the critical-path bound) and
  the old one-Prefect-task-run-per-fit way (``prefect-dask``, ``prefect-dask-stock``);
* ``search-large``: bigger grids, 1,005 fits on 1000x20 rows: the project, raw Dask and
  ``train-flow-halving`` (successive halving on the same grids, for the halving goal);
* ``search-10mb`` / ``search-100mb``: 6 cheap fits on ~10 and ~100 MB of training
  data, for bytes sent to workers per fit (the project, raw Dask; sklearn at 10 MB).

Every backend does the project's own candidate x fold fits: raw Dask and the per-fit
Prefect rows run :func:`~.ml.search.fit_one` on the jobs :func:`jobs` plans (through
``run_item``), sklearn and dask-ml search the same pipelines over the same grids and folds.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from prefect_sklearn_dask.benchmarks.backends import run_search_flow
from prefect_sklearn_dask.benchmarks.base import (
    Env,
    Goal,
    GoalContext,
    Item,
    Measurement,
    Rows,
    Workload,
    scheduler_bytes,
)
from prefect_sklearn_dask.benchmarks.work import SEARCH_METRIC
from prefect_sklearn_dask.ml.data import DatasetRef, load_split, prepare
from prefect_sklearn_dask.ml.preprocess import make_preprocessor
from prefect_sklearn_dask.ml.registry import build_estimator, by_cost, get_spec
from prefect_sklearn_dask.ml.search import FitJob, plan_search, round_jobs, short_params
from prefect_sklearn_dask.ml.search_space import parse_space

CV, SEED, METRIC = 3, 0, SEARCH_METRIC
# Halving tries this many of each model's grid points (sampled without replacement, as
# ParameterSampler does when every parameter is a list): 12 + 4 + 2 candidates over three
# rounds = 54 fits a model, 324 of the large grid's 1,005 (32%). README: "search".
HALVING_N_ITER = 12
QUICK_HALVING_N_ITER = 3
GOAL_VS_RAW = 1.10
GOAL_VS_SKLEARN = 1.0
GOAL_HALVING_SCORE = 0.005
GOAL_HALVING_FITS = 0.40
GOAL_BYTES_GROWTH = 1.25  # bytes/fit at 100 MB over bytes/fit at 10 MB

PROJECT = "train-flow-search"
HALVING = "train-flow-halving"
SKLEARN = "sklearn-gridsearch-dask"
DASK_ML = "dask-ml-gridsearch"
SEARCH_BACKENDS: tuple[str, ...] = (PROJECT, HALVING, DASK_ML)
DESCRIPTIONS = {
    PROJECT: "search: the project's train_flow(search='grid', runner='dask', address=warm "
    "cluster), the whole flow run",
    HALVING: "search: train_flow(search='halving') over the same grids' points",
    DASK_ML: "search: dask-ml GridSearchCV(scheduler=client) over the same grids (optional)",
}

SMALL_SPACE: dict[str, dict[str, list[Any]]] = {  # 36 candidates x 3 folds = 108 fits
    "logreg": {"C": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]},
    "knn": {"n_neighbors": [3, 5, 11, 21, 41], "weights": ["uniform", "distance"]},
    "tree": {"max_depth": [2, 4, 6, 8, 12, None]},
    "svc": {"C": [0.5, 1.0, 5.0, 20.0], "gamma": ["scale", 0.01]},
    "nb": {"var_smoothing": [1e-11, 1e-9, 1e-7, 1e-5]},
    "lda": {"solver": ["svd", "lsqr"]},
}
LARGE_SPACE: dict[str, dict[str, list[Any]]] = {  # 335 candidates x 3 folds = 1,005 fits
    # wider grids of the same 6 models, weighted to the cheap ones so 1,000+ fits stay
    # about a minute of work on 2 cores (trees and neighbours cost the most per fit)
    "logreg": {
        "C": [10.0 ** (e / 3) for e in range(-12, 8)],
        "tol": [1e-4, 1e-3],
        "class_weight": [None, "balanced"],
    },
    "knn": {"n_neighbors": list(range(1, 61, 2)), "weights": ["uniform", "distance"]},
    "tree": {"max_depth": [*range(1, 12), None], "min_samples_leaf": [1, 2, 5, 10]},
    "svc": {"C": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0], "gamma": ["scale", 0.01, 0.1]},
    "nb": {"var_smoothing": [10.0 ** -(e / 5) for e in range(5, 70)]},
    "lda": {"solver": ["lsqr"], "shrinkage": [None, *(i / 60 for i in range(60))]},
}
QUICK_SPACE: dict[str, dict[str, list[Any]]] = {  # 12 candidates x 3 folds = 36 fits
    "logreg": {"C": [0.1, 1.0, 10.0]},
    "knn": {"n_neighbors": [3, 5, 11]},
    "nb": {"var_smoothing": [1e-9, 1e-7]},
    "tree": {"max_depth": [3, None]},
    "lda": {"solver": ["svd", "lsqr"]},
}
# 2 candidates x 3 folds = 6 fits: at 100 MB a fit (its fold's rows copied, preprocessed,
# fitted, scored) takes seconds even for naive Bayes, so the rows stay well under a minute
BYTES_SPACE: dict[str, dict[str, list[Any]]] = {"nb": {"var_smoothing": [1e-9, 1e-7]}}
# Uneven fit times (forests take ~100x a naive Bayes fit) on digits, a grid the other
# workloads do not use: 17 candidates x 3 folds = 51 fits, for the searches-alone goal
# and the whole-command rows (whole.py).
UNEVEN_SPACE: dict[str, dict[str, list[Any]]] = {
    "rf": {"n_estimators": [50, 200], "max_depth": [None, 8]},
    "svc": {"C": [1.0, 10.0], "gamma": ["scale", 0.001]},
    "logreg": {"C": [0.1, 1.0, 10.0]},
    "knn": {"n_neighbors": [3, 5, 11, 21]},
    "nb": {"var_smoothing": [1e-9, 1e-7]},
}
LOKY = "sklearn-gridsearch"  # GridSearchCV(n_jobs=workers) on loky: the one-machine anchor
UNEVEN = "search-uneven"
WHOLE_COMMANDS = ("cmd-train-search", "cmd-sklearn-gridsearch")  # whole.py's rows
PER_FIT = ("sequential", "prefect-dask", "prefect-dask-stock")  # one item/task run per fit
# workload -> (dataset, space, backends, halving n_iter)
FULL: dict[str, tuple[str, dict[str, Any], tuple[str, ...], int | None]] = {
    "search": (
        "synthetic:n_samples=2000,n_features=20",
        SMALL_SPACE,
        (PROJECT, LOKY, SKLEARN, DASK_ML, "raw-dask", *PER_FIT),
        None,
    ),
    "search-large": (
        "synthetic:n_samples=1000,n_features=20",
        LARGE_SPACE,
        (PROJECT, HALVING, "raw-dask"),
        HALVING_N_ITER,
    ),
    UNEVEN: ("digits", UNEVEN_SPACE, (PROJECT, "raw-dask", LOKY, SKLEARN, *WHOLE_COMMANDS), None),
    # 56,000 x 30 float64, 75% for training: 10.1 MB; 560,000: 100.8 MB
    "search-10mb": (
        "synthetic:n_samples=56000,n_features=30",
        BYTES_SPACE,
        (PROJECT, SKLEARN, "raw-dask"),
        None,
    ),
    "search-100mb": (
        "synthetic:n_samples=560000,n_features=30",
        BYTES_SPACE,
        (PROJECT, "raw-dask"),
        None,
    ),
}
QUICK = {
    "search": (
        "synthetic:n_samples=600,n_features=10",
        QUICK_SPACE,
        (PROJECT, HALVING, LOKY, SKLEARN, DASK_ML, "raw-dask", "sequential", "prefect-dask"),
        QUICK_HALVING_N_ITER,
    )
}
GROUP = "search"  # what --workload search selects


def runs_at(workload: str, backend: str, workers: int, goal_workers: int) -> bool:
    """Search workloads run whole at the goals' worker count; at the others only the
    scaling line's rows (``search``: the project and raw Dask), which keeps a
    ``--workers 1,2`` run to minutes on 2 cores instead of most of an hour."""
    if workload not in FULL or workers == goal_workers:
        return True
    return workload == GROUP and backend in (PROJECT, "raw-dask")


def names(quick: bool) -> tuple[str, ...]:
    """The workloads ``--workload search`` runs."""
    return tuple(QUICK if quick else FULL)


def jobs(ref: DatasetRef, space: dict[str, Any]) -> list[FitJob]:
    """The project's grid fits for ``space``, models in the order it submits them."""
    parsed = parse_space(space, "grid")
    out: list[FitJob] = []
    for model in by_cost(list(parsed)):
        plan = plan_search(
            model, ref, "grid", parsed[model], n_iter=1, cv=CV, seed=SEED, metric=METRIC
        )
        out += round_jobs(plan, plan.rounds[0], range(len(plan.params)))
    return out


def build(name: str, quick: bool) -> Workload:
    """The search workload ``name`` as ``--workload search`` (``--quick``) runs it."""
    return make(name, *(QUICK if quick else FULL)[name])


def make(
    name: str,
    source: str,
    space: dict[str, Any],
    backends: tuple[str, ...],
    halving_n_iter: int | None = None,
) -> Workload:
    """A search workload: its data, its fits as items, the backends it runs."""
    data = prepare(source, None, 0.25, SEED)
    items = tuple(search_item(job) for job in jobs(data, space))
    mb = data.n_rows * 0.75 * data.n_features * 8 / 1e6
    return Workload(
        name,
        f"{len(items)} fits: grids of {','.join(space)} x {CV} folds on {source} "
        f"({mb:.1f} MB training data)",
        items,
        data,
        SEED,
        backends=backends,
        search={"source": source, "space": space, "halving_n_iter": halving_n_iter, "cv": CV},
        sklearn=sklearn_search,
    )


def search_item(job: FitJob) -> Item:
    """A search fit (:class:`~.ml.search.FitJob`) as an item: model, params, fold."""
    return Item(
        "search",
        f"{job.model}[{short_params(job.params)}]#{job.fold.index}",
        model=job.model,
        params=tuple(job.params.items()),
        fold=job.fold.index,
        folds=job.fold.cv,
    )


# Backends ------------------------------------------------------------------------------


def skip_reason(backend: str) -> str | None:
    """Why an optional backend cannot run here (None: it can)."""
    if backend != DASK_ML:
        return None
    try:
        import dask_ml.model_selection  # noqa: F401
    except ImportError as exc:
        return f"dask-ml not installed ({exc}); pip install -c constraints.txt '.[bench]'"
    return None


def _grids(ref: DatasetRef, space: dict[str, Any]) -> tuple[Any, list[dict[str, Any]], Any]:
    """The pipeline, list of grids and folds both GridSearchCVs search (the project's fits)."""
    from sklearn.model_selection import StratifiedKFold
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
    return pipeline, grids, StratifiedKFold(CV, shuffle=True, random_state=SEED)


def sklearn_search(workload: Workload):
    """One ``GridSearchCV`` whose list of grids is every model's grid (refit off)."""
    from sklearn.model_selection import GridSearchCV

    pipeline, grids, folds = _grids(workload.data, workload.search["space"])
    return GridSearchCV(pipeline, grids, scoring=METRIC, cv=folds, refit=False, n_jobs=-1)


def run_dask_ml(backend: str, workload: Workload, env: Env) -> Measurement:
    """dask-ml's ``GridSearchCV`` on the warm cluster: it builds one graph of every fit."""
    from dask_ml.model_selection import GridSearchCV

    pipeline, grids, folds = _grids(workload.data, workload.search["space"])
    search = GridSearchCV(
        pipeline, grids, scoring=METRIC, cv=folds, refit=False, scheduler=env.client
    )
    split = load_split(workload.data)
    before = env.client.run_on_scheduler(scheduler_bytes)
    started = time.perf_counter()
    with env.client.as_current():  # the suite's client is not the process's default
        search.fit(split.X_train, split.y_train)
    wall = time.perf_counter() - started
    fits = len(search.cv_results_["params"]) * CV
    sent = env.client.run_on_scheduler(scheduler_bytes) - before
    return Measurement(backend, fits, wall, bytes_to_workers=sent)


def run_train_flow(backend: str, workload: Workload, env: Env) -> Measurement:
    """The project's whole ``train-flow`` run (grid or halving) on the warm cluster."""
    spec = workload.search
    halving = backend == HALVING
    n_iter = spec["halving_n_iter"] if halving else 1
    measured, _ = run_search_flow(
        backend,
        env,
        "bench-search-",
        dataset=spec["source"],
        models=list(spec["space"]),
        search="halving" if halving else "grid",
        n_iter=n_iter,
        search_space=spec["space"],
        cv=CV,
        seed=SEED,
        metric=METRIC,
    )
    if halving:
        measured.search["row_weighted_fits"] = row_weighted_fits(workload, n_iter)
    return measured


def row_weighted_fits(workload: Workload, n_iter: int) -> float:
    """Halving's fits in full-fold equivalents: each fit weighted by its rows / all rows."""
    ref, parsed = workload.data, parse_space(workload.search["space"], "halving")
    n_train = len(load_split(ref).y_train)
    total = 0
    for model, space in parsed.items():
        plan = plan_search(
            model, ref, "halving", space, n_iter=n_iter, cv=CV, seed=SEED, metric=METRIC
        )
        total += sum(r.n_candidates * CV * (r.n_resources or n_train) for r in plan.rounds)
    total /= n_train
    return round(total, 1)


# Goals ---------------------------------------------------------------------------------


def goals(ctx: GoalContext) -> list[Goal]:
    """The issue's search goals; ``ctx.row(workload, backend)`` finds a measured row."""
    row, at = ctx.row, ctx.at
    sizes = ("search", "search-large")  # the speed goals; the MB workloads are for bytes

    def ratios(other: str) -> dict[str, float]:
        out = {}
        for name in sizes:
            mine, them = row(name, PROJECT), row(name, other)
            if mine and them:
                out[name] = mine["wall_median_s"] / them["wall_median_s"]
        return out

    def walls(name: str, other: str) -> str:
        mine, them = row(name, PROJECT), row(name, other)["wall_median_s"]
        phase = mine.get("searches_median_s")
        inner = f"; its searches alone {phase / them:.2f}x, {phase:.2f} s" if phase else ""
        return f"{mine['wall_median_s']:.2f} s vs {them:.2f} s{inner}"

    out: list[Goal] = []
    for other, target, label in (
        ("raw-dask", GOAL_VS_RAW, "raw Dask client.map"),
        (SKLEARN, GOAL_VS_SKLEARN, "sklearn GridSearchCV on joblib's dask backend"),
    ):
        found = ratios(other)
        out.append(
            Goal(
                f"search: project train-flow --search grid vs {label}{at}",
                f"<= {target:.2f}x wall on the same fits",
                "; ".join(
                    f"{n} ({row(n, PROJECT)['n_tasks']} fits) {v:.2f}x ({walls(n, other)})"
                    for n, v in found.items()
                )
                or "not measured",
                all(v <= target for v in found.values()) if found else None,
            )
        )
    out.append(uneven_goal(row, at))
    out.append(halving_goal(row, at))
    out.append(bytes_goal(row, at))
    return out


def uneven_goal(row, at: str) -> Goal:
    """The project's searches alone (refits included, the flow's fixed cost left out) over
    raw Dask's ``client.map`` of the same fits, where fit times are uneven."""
    mine, raw = row(UNEVEN, PROJECT), row(UNEVEN, "raw-dask")
    name = f"search: the project's searches alone vs raw Dask, uneven fit times{at}"
    target = f"<= {GOAL_VS_RAW:.2f}x on the same fits"
    if not (mine and raw and mine.get("searches_median_s")):
        return Goal(name, target, "not measured", None)
    ratio = mine["searches_median_s"] / raw["wall_median_s"]
    measured = (
        f"{UNEVEN} ({mine['n_tasks']} fits) {ratio:.2f}x ({mine['searches_median_s']:.2f} s vs "
        f"{raw['wall_median_s']:.2f} s; whole flow run {mine['wall_median_s']:.2f} s)"
    )
    return Goal(name, target, measured, ratio <= GOAL_VS_RAW)


def halving_goal(row, at: str) -> Goal:
    """Halving's best CV score within 0.005 of the full grid's, with <= 40% of its fits."""
    name = next((n for n in ("search-large", "search") if row(n, HALVING)), None)
    grid, halv = (row(name, PROJECT), row(name, HALVING)) if name else (None, None)
    target = (
        f"best CV {METRIC} within {GOAL_HALVING_SCORE} of the full grid's with "
        f"<= {GOAL_HALVING_FITS:.0%} of its fits"
    )
    if not (grid and halv and grid.get("best_cv") is not None and halv.get("best_cv")):
        return Goal(f"search: halving vs full grid{at}", target, "not measured", None)
    gap = grid["best_cv"] - halv["best_cv"]
    share = halv["n_tasks"] / grid["n_tasks"]
    per_model = ", ".join(
        f"{m} {grid['best_cv_by_model'][m]:.4f}/{halv['best_cv_by_model'].get(m, math.nan):.4f}"
        for m in grid["best_cv_by_model"]
    )
    measured = (
        f"{name}: best {halv['best_cv']:.4f} (halving) vs {grid['best_cv']:.4f} (grid), gap "
        f"{gap:+.4f}; {halv['n_tasks']} vs {grid['n_tasks']} fits ({share:.0%}; "
        f"{halv.get('row_weighted_fits')} full-fold equivalents); per model grid/halving: "
        f"{per_model}"
    )
    return Goal(
        f"search: halving vs full grid{at}",
        target,
        measured,
        gap <= GOAL_HALVING_SCORE and share <= GOAL_HALVING_FITS,
    )


def bytes_goal(row, at: str) -> Goal:
    """Bytes sent to workers per fit must not grow from ~10 MB to ~100 MB of data."""
    parts, ok = [], []
    for backend in (PROJECT, "raw-dask", SKLEARN):
        small, big = row("search-10mb", backend), row("search-100mb", backend)
        if not small or small.get("bytes_per_task") is None:
            continue
        text = f"{backend} {small['bytes_per_task']:,} B/fit at 10 MB"
        if big and big.get("bytes_per_task") is not None:
            growth = big["bytes_per_task"] / max(small["bytes_per_task"], 1)
            text += f", {big['bytes_per_task']:,} at 100 MB ({growth:.2f}x)"
            if backend != SKLEARN:
                ok.append(growth <= GOAL_BYTES_GROWTH)
        parts.append(text)
    return Goal(
        f"search: bytes sent to workers per fit, 10 MB -> 100 MB of training data{at}",
        f"flat (<= {GOAL_BYTES_GROWTH:.2f}x) for the project and raw Dask",
        "; ".join(parts) or "not measured",
        all(ok) if ok else None,
    )


def add_row_fields(row: dict[str, Any], runs: list[Measurement]) -> None:
    """Best CV scores (median over repeats: they do not vary) and halving's weighted fits."""
    found = [m.search for m in runs if m.search]
    if not found:
        return
    by_model = found[0]["best_cv"]
    row["best_cv_by_model"] = {m: round(v, 6) for m, v in by_model.items()}
    row["best_cv"] = round(max(by_model.values()), 6) if by_model else None
    row["fits_by_model"] = found[0]["fits_by_model"]
    row["searches_median_s"] = round(statistics.median(f["searches_s"] for f in found), 3)
    weighted = [f["row_weighted_fits"] for f in found if "row_weighted_fits" in f]
    if weighted:
        row["row_weighted_fits"] = statistics.median(weighted)


def _builder(name: str):
    return lambda quick: build(name, quick)


ROWS = Rows(
    name="search",
    workloads={name: _builder(name) for name in FULL},
    listed=(GROUP,),
    groups={GROUP: names},
    backends={PROJECT: run_train_flow, HALVING: run_train_flow, DASK_ML: run_dask_ml},
    descriptions=DESCRIPTIONS,
    runs_at=runs_at,
    goals=goals,
    row_fields=add_row_fields,
    skip_reason=skip_reason,
    server_recorded=(PROJECT, HALVING),
    scaling=(PROJECT,),
)
