"""The ``optuna`` workloads of ``benchmarks/compare.py``: model-based search, measured.

``--workload optuna`` runs one workload per dataset (``optuna-digits``,
``optuna-breast-cancer``; ``--quick``: ``optuna-iris``, one cheap model), each model
searched over its registry distributions with the same trials, folds and seed by:

* ``train-flow-optuna``: the project's ``train_flow(search="optuna")`` (TPE, median
  pruner over the folds) on the warm cluster, the whole flow run;
* ``train-flow-optuna-nopruning``: the same with ``pruner="none"`` (every fold of
  every trial);
* ``train-flow-random``: ``search="random"`` with as many candidates as trials;
* ``raw-dask-optuna-fits``: raw ``client.map`` of exactly the fits the no-pruning study
  makes (the driver is deterministic: its trials are found once, untimed, by the same
  driver over plain Dask, and checked against the flow's);
* ``optuna-daskstorage``: Optuna's own Dask route (optuna-integration's ``DaskStorage``,
  the study on the scheduler, ``study.optimize`` tasks on the workers, one trial's folds
  in one task), where it is installed (the optional ``bench`` extra).

Goal lines: TPE vs random at equal trials (best CV within 0.005 of random's or above,
per model and dataset); pruning vs none (<= 60% of the fits, best within 0.005); the
trials' fits vs raw Dask of the same fits (<= 1.15x); the project vs ``DaskStorage``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import statistics
import time
import warnings
from typing import Any

from prefect_sklearn_dask.benchmarks.backends import run_raw_dask, run_search_flow
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
from prefect_sklearn_dask.ml.data import DatasetRef, prepare

SEED, METRIC = 0, SEARCH_METRIC
GOAL_VS_RANDOM = 0.005  # optuna's best CV at most this much below random's
GOAL_PRUNED_FITS = 0.60
GOAL_PRUNED_SCORE = 0.005
GOAL_VS_RAW = 1.15

OPTUNA = "train-flow-optuna"
NO_PRUNING = "train-flow-optuna-nopruning"
RANDOM = "train-flow-random"
RAW = "raw-dask-optuna-fits"
DASK_STORAGE = "optuna-daskstorage"
BACKENDS = (OPTUNA, NO_PRUNING, RANDOM, RAW, DASK_STORAGE)
DESCRIPTIONS = {
    OPTUNA: "optuna: train_flow(search='optuna', pruner='median') on the warm cluster",
    NO_PRUNING: "optuna: train_flow(search='optuna', pruner='none'): every fold of every trial",
    RANDOM: "optuna: train_flow(search='random') with as many candidates as trials",
    RAW: "optuna: raw client.map of the no-pruning study's fits",
    DASK_STORAGE: "optuna: Optuna's DaskStorage + study.optimize tasks (optional)",
}

# workload -> (dataset, models, trials, folds)
FULL: dict[str, tuple[str, tuple[str, ...], int, int]] = {
    "optuna-digits": ("digits", ("svc", "knn", "logreg"), 30, 5),
    "optuna-breast-cancer": ("breast_cancer", ("svc", "knn", "logreg"), 30, 5),
}
QUICK = {"optuna-iris": ("iris", ("knn",), 6, 3)}
GROUP = "optuna"


def names(quick: bool) -> tuple[str, ...]:
    return tuple(QUICK if quick else FULL)


def build(name: str, quick: bool) -> Workload:
    """The workload ``name``: its data and search; its items are found when measured."""
    source, models, n_iter, cv = (QUICK if quick else FULL)[name]
    data = prepare(source, None, 0.25, SEED)
    return Workload(
        name,
        f"{','.join(models)}: {n_iter} trials x {cv} folds each on {source} "
        f"({data.n_rows} rows x {data.n_features})",
        (),
        data,
        SEED,
        backends=BACKENDS,
        search={"source": source, "models": models, "n_iter": n_iter, "cv": cv},
    )


# Backends ------------------------------------------------------------------------------


def run_train_flow(backend: str, workload: Workload, env: Env) -> Measurement:
    """The project's whole ``train-flow`` run: optuna (median / no pruning) or random."""
    spec = workload.search
    measured, rows = run_search_flow(
        backend,
        env,
        "bench-optuna-",
        dataset=spec["source"],
        models=list(spec["models"]),
        search="random" if backend == RANDOM else "optuna",
        pruner="none" if backend == NO_PRUNING else "median",
        n_iter=spec["n_iter"],
        cv=spec["cv"],
        seed=SEED,
        metric=METRIC,
    )
    extra = {"pruned_by_model": {r["model"]: r["search"].get("pruned_trials") for r in rows}}
    if backend == NO_PRUNING:
        extra["trials"] = {r["model"]: _trials(r["search"]["history"]) for r in rows}
    return dataclasses.replace(measured, extra=extra)


def _trials(history: list[dict[str, Any]]) -> list[tuple[tuple[tuple[str, Any], ...], int]]:
    return [(tuple(sorted(h["params"].items())), h["folds"]) for h in history]


_FITS: dict[tuple[str, int], dict[str, list]] = {}


def study_fits(workload: Workload, env: Env) -> dict[str, list]:
    """Per model, the no-pruning study's trials (params, folds), found by the project's
    driver over plain Dask on ``env.client``: the same trials the flow makes (same seed,
    same trials in flight: the cluster's threads). Once per workload and cluster size."""
    from prefect_sklearn_dask.bridge.fanout import fits_on, fold_stream
    from prefect_sklearn_dask.flow import fit_cache
    from prefect_sklearn_dask.flow.optuna_task import CachedFolds
    from prefect_sklearn_dask.ml.optuna_search import StudyPlan, run_study
    from prefect_sklearn_dask.ml.optuna_space import to_optuna
    from prefect_sklearn_dask.ml.search import scorer_name
    from prefect_sklearn_dask.ml.search_space import space_for

    key = (workload.name, sum(env.client.nthreads().values()))
    if key in _FITS:
        return _FITS[key]
    spec, ref = workload.search, workload.data
    found = {}
    with fits_on(env.client), fold_stream(fit_cache.fit_and_store) as stream:
        for model in spec["models"]:
            plan = StudyPlan(
                model,
                scorer_name(METRIC, ref.n_classes),
                spec["cv"],
                SEED,
                spec["n_iter"],
                stream.capacity,
                "none",
                model,
            )
            space = to_optuna(model, space_for(model, "optuna"))
            outcome = run_study(plan, space, CachedFolds(stream, ref, None))
            found[model] = _trials(outcome.history)
    _FITS[key] = found
    return found


def run_raw(backend: str, workload: Workload, env: Env) -> Measurement:
    """Raw ``client.map`` of the no-pruning study's fits, all at once (the lower bound)."""
    fits = study_fits(workload, env)
    items = tuple(
        Item(
            "search",
            f"{model}#{trial}.{k}",
            model=model,
            params=params,
            fold=k,
            folds=workload.search["cv"],
        )
        for model, trials in fits.items()
        for trial, (params, n_folds) in enumerate(trials)
        for k in range(n_folds)
    )
    measured = run_raw_dask(backend, dataclasses.replace(workload, items=items), env)
    measured.extra["trials"] = fits
    return measured


def skip_reason(backend: str) -> str | None:
    """Why the DaskStorage row cannot run here (None: it can)."""
    if backend != DASK_STORAGE:
        return None
    try:
        import optuna_integration.dask  # noqa: F401
    except ImportError as exc:
        return (
            f"optuna-integration not installed ({exc}); pip install -c constraints.txt '.[bench]'"
        )
    return None


class FoldsObjective:
    """The objective ``study.optimize`` runs on a worker: a trial's folds one after the
    other in that task, each reported, pruned by Optuna's median pruner."""

    def __init__(self, model: str, ref: DatasetRef, cv: int, scoring: str) -> None:
        self.model, self.ref, self.cv, self.scoring = model, ref, cv, scoring

    def __call__(self, trial: Any) -> float:
        import optuna

        from prefect_sklearn_dask.ml.optuna_space import to_optuna
        from prefect_sklearn_dask.ml.search import FitJob, Fold, fit_one
        from prefect_sklearn_dask.ml.search_space import space_for

        space = to_optuna(self.model, space_for(self.model, "optuna"))
        params = {name: suggest(trial, name, d) for name, d in space.distributions.items()}
        scores = []
        for k in range(self.cv):
            job = FitJob(self.model, space.decode(params), Fold(self.cv, k, SEED), self.scoring, 0)
            scores.append(fit_one(self.ref, job).score)
            trial.set_user_attr("folds", k + 1)
            if math.isnan(scores[-1]):
                raise ValueError("the fold scored NaN")
            trial.report(statistics.fmean(scores), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return statistics.fmean(scores)


def suggest(trial: Any, name: str, distribution: Any) -> Any:
    """``trial.suggest_*`` for one of :func:`~.ml.optuna_space.to_optuna`'s distributions."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high)
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


def optimize_on_worker(
    name: str, storage: Any, seed: int, objective: Any, n_trials: int, n_iter: int
) -> None:
    """One ``study.optimize`` task: its own seeded sampler (a pickled one would make
    every task sample the same points), the shared study on the scheduler."""
    import optuna

    from prefect_sklearn_dask.ml.optuna_search import startup_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(n_iter)),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(objective, n_trials=n_trials)


def run_dask_storage(backend: str, workload: Workload, env: Env) -> Measurement:
    """Optuna's documented Dask route: ``DaskStorage`` (the study lives on the scheduler)
    and ``client.submit(study.optimize, ...)`` tasks, one per worker thread per model."""
    import optuna
    from distributed import wait
    from optuna_integration.dask import DaskStorage

    from prefect_sklearn_dask.ml.search import scorer_name

    spec, ref = workload.search, workload.data
    threads = max(1, sum(env.client.nthreads().values()))
    scoring = scorer_name(METRIC, ref.n_classes)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    before = env.client.run_on_scheduler(scheduler_bytes)
    started = time.perf_counter()
    studies, futures = {}, []
    for model in spec["models"]:
        with warnings.catch_warnings():  # "DaskStorage is experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = DaskStorage(client=env.client)
        name = f"{model}-{time.time_ns()}"
        studies[model] = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        share = [spec["n_iter"] // threads + (i < spec["n_iter"] % threads) for i in range(threads)]
        objective = FoldsObjective(model, ref, spec["cv"], scoring)
        futures += [
            env.client.submit(
                optimize_on_worker,
                name,
                storage,
                SEED + i,
                objective,
                n,
                spec["n_iter"],
                pure=False,
            )
            for i, n in enumerate(share)
            if n
        ]
    with env.client.as_current():  # the suite's client is not the process's default
        wait(futures, timeout=env.timeout)
    env.client.gather(futures)  # a task that raised raises here
    wall = time.perf_counter() - started
    sent = env.client.run_on_scheduler(scheduler_bytes) - before
    best, fits, pruned = {}, {}, {}
    for model, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        fits[model] = sum(t.user_attrs.get("folds", 0) for t in trials)
        pruned[model] = sum(t.state.name == "PRUNED" for t in trials)
        best[model] = study.best_value
    return Measurement(
        backend,
        sum(fits.values()),
        wall,
        bytes_to_workers=sent,
        search={"best_cv": best, "fits_by_model": fits, "searches_s": wall},
        extra={"pruned_by_model": pruned},
    )


# Goals ---------------------------------------------------------------------------------


def goals(ctx: GoalContext) -> list[Goal]:
    """The issue's optuna goals over every measured optuna workload."""
    row, at = ctx.row, ctx.at
    measured = [n for n in (*FULL, *QUICK) if row(n, OPTUNA)]
    return [
        vs_random(row, measured, at),
        pruning(row, measured, at),
        vs_raw(row, measured, at),
        vs_dask_storage(row, measured, at),
    ]


def _best(r: dict[str, Any] | None) -> dict[str, float]:
    return (r or {}).get("best_cv_by_model") or {}


def vs_random(row, measured: list[str], at: str) -> Goal:
    target = f"best CV {METRIC} per model >= random search's - {GOAL_VS_RANDOM} at equal trials"
    parts, ok = [], []
    for name in measured:
        mine, theirs = _best(row(name, OPTUNA)), _best(row(name, RANDOM))
        if not theirs:
            continue
        gaps = {m: mine[m] - theirs[m] for m in mine if m in theirs}
        ok += [gap >= -GOAL_VS_RANDOM for gap in gaps.values()]
        parts.append(
            f"{name}: "
            + ", ".join(f"{m} {mine[m]:.4f} vs {theirs[m]:.4f} ({g:+.4f})" for m, g in gaps.items())
            + f"; fits {row(name, OPTUNA)['n_tasks']} vs {row(name, RANDOM)['n_tasks']}"
        )
    return Goal(
        f"optuna: TPE vs random search{at}",
        target,
        "; ".join(parts) or "not measured",
        all(ok) if ok else None,
    )


def pruning(row, measured: list[str], at: str) -> Goal:
    target = (
        f"median pruning uses <= {GOAL_PRUNED_FITS:.0%} of the fits, best CV per model "
        f"within {GOAL_PRUNED_SCORE} of no pruning's"
    )
    parts, ok = [], []
    for name in measured:
        pruned, full = row(name, OPTUNA), row(name, NO_PRUNING)
        if not full:
            continue
        share = pruned["n_tasks"] / full["n_tasks"]
        gaps = {m: _best(full)[m] - _best(pruned).get(m, math.nan) for m in _best(full)}
        ok.append(share <= GOAL_PRUNED_FITS and all(g <= GOAL_PRUNED_SCORE for g in gaps.values()))
        parts.append(
            f"{name}: {pruned['n_tasks']} vs {full['n_tasks']} fits ({share:.0%}), best gap "
            + ", ".join(f"{m} {g:+.4f}" for m, g in gaps.items())
        )
    return Goal(
        f"optuna: pruning vs none{at}",
        target,
        "; ".join(parts) or "not measured",
        all(ok) if ok else None,
    )


def vs_raw(row, measured: list[str], at: str) -> Goal:
    target = f"<= {GOAL_VS_RAW:.2f}x raw Dask client.map of the same fits (searches alone)"
    parts, ok = [], []
    for name in measured:
        full, raw = row(name, NO_PRUNING), row(name, RAW)
        if not (full and raw):
            continue
        searches = full.get("searches_median_s") or full["wall_median_s"]
        ratio = searches / raw["wall_median_s"]
        same = full.get("trials_sha") == raw.get("trials_sha") is not None
        ok.append(ratio <= GOAL_VS_RAW and same)
        parts.append(
            f"{name} ({raw['n_tasks']} fits, {'the same' if same else 'NOT the same'} trials): "
            f"{ratio:.2f}x ({searches:.2f} s vs "
            f"{raw['wall_median_s']:.2f} s; whole flow run {full['wall_median_s']:.2f} s)"
        )
    return Goal(
        f"optuna: trials' fits vs raw Dask{at}",
        target,
        "; ".join(parts) or "not measured",
        all(ok) if ok else None,
    )


def vs_dask_storage(row, measured: list[str], at: str) -> Goal:
    target = "the project's optuna run (whole flow) no slower than Optuna's DaskStorage route"
    parts, ok = [], []
    for name in measured:
        mine, theirs = row(name, OPTUNA), row(name, DASK_STORAGE)
        if not theirs or theirs.get("skipped"):
            continue
        ok.append(mine["wall_median_s"] <= theirs["wall_median_s"])
        parts.append(
            f"{name}: {mine['wall_median_s']:.2f} s vs {theirs['wall_median_s']:.2f} s; fits "
            f"{mine['n_tasks']} vs {theirs['n_tasks']}; best "
            + ", ".join(
                f"{m} {_best(mine)[m]:.4f}/{_best(theirs).get(m, math.nan):.4f}"
                for m in _best(mine)
            )
        )
    return Goal(
        f"optuna: project vs Optuna's DaskStorage{at}",
        target,
        "; ".join(parts) or "not measured",
        all(ok) if ok else None,
    )


def add_row_fields(row: dict[str, Any], runs: list[Measurement]) -> None:
    """Best CV by model, fits and pruned trials by model, the searches' seconds."""
    trials = next((m.extra["trials"] for m in runs if "trials" in m.extra), None)
    if trials is not None:  # the no-pruning study's trials and raw Dask's: the same fits?
        row["trials_sha"] = hashlib.sha256(repr(sorted(trials.items())).encode()).hexdigest()[:12]
    found = [m for m in runs if m.search and m.backend in BACKENDS]
    if not found:
        return
    first = found[0]
    row["best_cv_by_model"] = {m: round(v, 6) for m, v in first.search["best_cv"].items()}
    row["best_cv"] = max(row["best_cv_by_model"].values(), default=None)
    row["fits_by_model"] = first.search["fits_by_model"]
    row["pruned_by_model"] = first.extra.get("pruned_by_model")
    row["searches_median_s"] = round(statistics.median(m.search["searches_s"] for m in found), 3)


def _builder(name: str):
    return lambda quick: build(name, quick)


ROWS = Rows(
    name="optuna",
    workloads={name: _builder(name) for name in (*FULL, *QUICK)},
    listed=(GROUP,),
    groups={GROUP: names},
    backends={
        OPTUNA: run_train_flow,
        NO_PRUNING: run_train_flow,
        RANDOM: run_train_flow,
        RAW: run_raw,
        DASK_STORAGE: run_dask_storage,
    },
    descriptions=DESCRIPTIONS,
    goals=goals,
    row_fields=add_row_fields,
    skip_reason=skip_reason,
    server_recorded=(OPTUNA, NO_PRUNING, RANDOM),
)
