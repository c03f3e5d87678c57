"""``search-<model>``: one Prefect task run per model's hyper-parameter search.

The task plans the search (:mod:`~.ml.search`), skips the fits already in the fit cache,
fans the rest out as plain Dask work, or threads (:mod:`~.bridge.fanout`), logs progress,
publishes a ``search-<model>`` table artifact with the top candidates, and refits the
winner on the whole training split where the fits ran, scored on the held-out test split
like any other model of the run. ``train-flow`` runs these tasks in its own process on
Dask (:meth:`~.runner.Run.submitter`): measured faster than driving fits from a worker.
The returned :class:`~.ml.evaluate.TrainReport` carries the search's summary in ``search``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefect_sklearn_dask.bridge.fanout import fan_out
from prefect_sklearn_dask.flow import fit_cache
from prefect_sklearn_dask.flow.fit_cache import FitCache
from prefect_sklearn_dask.flow.tasks import TRANSIENT_RETRIES
from prefect_sklearn_dask.flow.training_data import Training
from prefect_sklearn_dask.ml.data import DatasetRef
from prefect_sklearn_dask.ml.evaluate import TrainReport, train_and_evaluate
from prefect_sklearn_dask.ml.optuna_space import check_optuna
from prefect_sklearn_dask.ml.search import (
    AllCandidatesFailed,
    FitJob,
    FitResult,
    Progress,
    SearchResult,
    check_folds,
    check_options,
    plan_search,
    run_search,
    scorer_name,
    short_params,
)
from prefect_sklearn_dask.ml.search_space import parse_space, space_for

TOP_CANDIDATES = 10


def artifact_key(model: str) -> str:
    """Artifact keys take lowercase letters, digits and dashes only."""
    return "search-" + "".join(c if c.isalnum() else "-" for c in model.lower())


def top_rows(result: SearchResult, limit: int = TOP_CANDIDATES) -> list[dict[str, Any]]:
    """The best candidates (last halving round first), as the artifact's table rows."""
    last = max(r["iter"] for r in result.rows)
    ordered = sorted(
        result.rows,
        key=lambda r: (
            r["iter"] != last,
            math.isnan(r["mean_test_score"]),
            -(0 if math.isnan(r["mean_test_score"]) else r["mean_test_score"]),
            r["candidate"],
        ),
    )
    return [
        {
            "rank": r["rank_test_score"],
            "params": short_params(r["params"]) or "defaults",
            f"mean_{result.scoring}": _round(r["mean_test_score"]),
            "std": _round(r["std_test_score"]),
            "fit_seconds": round(r["mean_fit_time"], 3),
            **(
                {"iter": r["iter"], "n_resources": r["n_resources"]}
                if result.kind == "halving"
                else {}
            ),
            "failed_folds": len(r["errors"]),
        }
        for r in ordered[:limit]
    ]


def _round(value: float) -> float | str:
    return "failed" if math.isnan(value) else round(value, 4)


@task(
    name="search-model",
    task_run_name="search-{model}",
    cache_policy=NO_CACHE,  # each fit is cached instead (fit_cache), the search re-plans
    persist_result=False,
    **TRANSIENT_RETRIES,
)
def search_model(
    model: str,
    data: DatasetRef,
    kind: str,
    space: dict[str, Any] | None = None,
    n_iter: int = 10,
    cv: int = 3,
    seed: int = 0,
    metric: str = "f1_macro",
    cache_dir: str | None = None,
    max_concurrent: int | None = None,
    local_jobs: int = 1,
    pruner: str = "median",
) -> TrainReport:
    """Search ``model``'s hyper-parameters with ``cv``-fold CV, refit the best, score it.

    ``space`` is the user's space for this model (the registry's when None);
    ``cache_dir`` is where each finished fit is kept (None: nowhere). ``kind="optuna"``
    runs ``n_iter`` TPE trials, ``pruner`` stopping poor ones between folds
    (:mod:`.optuna_task`).
    """
    logger = get_run_logger()
    overrides = parse_space({model: space}, kind) if space else None
    model_space = space_for(model, kind, overrides)
    if kind == "optuna":
        from prefect_sklearn_dask.flow.optuna_task import optuna_search

        check_folds(data, cv)
        outcome, summary = optuna_search(
            model,
            data,
            model_space,
            n_iter=n_iter,
            cv=cv,
            seed=seed,
            scoring=scorer_name(metric, data.n_classes),
            pruner=pruner,
            cache_dir=cache_dir,
            max_concurrent=max_concurrent,
            local_jobs=local_jobs,
            logger=logger,
        )
        if outcome.best is None:
            errors = sorted({t.error for t in outcome.trials if t.error})
            raise AllCandidatesFailed(
                f"every trial of {model!r} failed ({summary['fits']} fits): "
                + "; ".join(errors[:3])
            )
        best_params = outcome.best.params
        trials = f"{summary['trials']} trials ({summary['pruned_trials']} pruned), "
    else:
        best_params, summary = _sklearn_rules_search(
            model,
            data,
            kind,
            model_space,
            n_iter,
            cv,
            seed,
            metric,
            cache_dir,
            max_concurrent,
            local_jobs,
            logger,
        )
        trials = ""
    # the refit runs where the fits ran (a worker, not the flow's machine)
    [report] = fan_out(
        train_and_evaluate,
        [(model, data, seed, best_params)],
        local_jobs=local_jobs,
        key_prefix=f"refit-{model}",
    )
    logger.info(
        f"{model}: best {summary['scoring']} {summary['cv_mean']:.4f} "
        f"+- {summary['cv_std']:.4f} ({short_params(best_params)}); {trials}"
        f"{summary['fits']} fits ({summary['failed_fits']} failed, "
        f"{summary['reused_fits']} from cache) in {summary['search_seconds']:.1f} s"
    )
    return replace(report, search=summary)


def _sklearn_rules_search(
    model: str,
    data: DatasetRef,
    kind: str,
    space: dict[str, Any],
    n_iter: int,
    cv: int,
    seed: int,
    metric: str,
    cache_dir: str | None,
    max_concurrent: int | None,
    local_jobs: int,
    logger: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """grid / random / halving: plan, skip cached fits, fan out, rank as sklearn does."""
    started = time.perf_counter()
    plan = plan_search(model, data, kind, space, n_iter=n_iter, cv=cv, seed=seed, metric=metric)
    logger.info(
        f"{model}: {kind} search, {len(plan.params)} candidates x {cv} folds, "
        f"{plan.n_fits} fits planned"
    )
    progress = Progress(plan, plan.scoring)
    reused = 0

    def execute(batch: list[FitJob]) -> list[FitResult]:
        nonlocal reused
        results = [
            fit_cache.load(cache_dir, fit_cache.fit_key(data, job)) if cache_dir else None
            for job in batch
        ]
        missing = [i for i, result in enumerate(results) if result is None]
        reused += len(batch) - len(missing)
        for job, result in zip(batch, results, strict=True):
            if result is not None:
                progress.add(job, result)

        def done(index: int, result: FitResult) -> None:
            line = progress.add(batch[missing[index]], result)
            if line:
                logger.info(line)

        fresh = fan_out(
            fit_cache.fit_and_store,
            [(data, batch[i], cache_dir) for i in missing],
            limit=max_concurrent,
            local_jobs=local_jobs,
            on_done=done,
            key_prefix=f"fit-{model}",
        )
        for i, result in zip(missing, fresh, strict=True):
            results[i] = result
        return results

    result = run_search(plan, execute)
    if reused:
        logger.info(f"{model}: reused {reused} of {result.n_fits} fits from cache")
    searched = time.perf_counter() - started
    create_table_artifact(
        table=top_rows(result),
        key=artifact_key(model),
        description=f"{model}: {kind} search, top candidates by mean CV {result.scoring} "
        f"({result.n_fits} fits, {result.n_failed} failed, {searched:.1f} s)",
    )
    if result.all_failed:
        raise AllCandidatesFailed(
            f"every candidate of {model!r} failed ({result.n_fits} fits): "
            + "; ".join(result.errors[:3])
        )
    best = result.best
    return best["params"], {
        "kind": kind,
        "scoring": result.scoring,
        "cv": cv,
        "cv_mean": best["mean_test_score"],
        "cv_std": best["std_test_score"],
        "candidates": len(plan.params),
        "fits": result.n_fits,
        "failed_fits": result.n_failed,
        "reused_fits": reused,
        "search_seconds": searched,
    }


@dataclass(frozen=True)
class SearchRequest:
    """A run's validated search options, and the search tasks the flow submits for them."""

    kind: str
    n_iter: int
    cv: int
    spaces: dict[str, Any]
    seed: int
    metric: str
    max_concurrent: int | None
    pruner: str = "median"

    def training(
        self, data: DatasetRef, cache: FitCache | None, runner: str, workers: int | None
    ) -> Training:
        """A ``search-<model>`` task per model, driven from the flow's process.

        Fits are cached in the run's generation (:func:`.fit_cache.search_folder`; None:
        not at all). In-process searches (threads, sequential) share ``workers``
        (default: the cores) threads, at most ``max_concurrent`` of them.
        """
        cache_dir = fit_cache.search_folder(cache)
        local_jobs = 1 if runner == "sequential" else workers or os.cpu_count() or 1
        local_jobs = min(local_jobs, self.max_concurrent or local_jobs)

        def inputs(model: str) -> dict[str, Any]:
            return {
                "model": model,
                "data": data,
                "kind": self.kind,
                "space": self.spaces.get(model),
                "n_iter": self.n_iter,
                "cv": self.cv,
                "seed": self.seed,
                "metric": self.metric,
                "cache_dir": cache_dir,
                "max_concurrent": self.max_concurrent,
                "local_jobs": local_jobs,
                **({"pruner": self.pruner} if self.kind == "optuna" else {}),
            }

        return Training(search_model, inputs, in_flow_process=True, count_fits=count_fits)


def count_fits(reports: list[TrainReport]) -> tuple[int, int]:
    """(fits reused from the cache, fits) over the models whose search finished."""
    searches = [r.search for r in reports if r.search]
    return sum(s["reused_fits"] for s in searches), sum(s["fits"] for s in searches)


def search_inputs(
    kind: str,
    n_iter: int,
    cv: int,
    search_space: dict[str, Any] | None,
    seed: int,
    metric: str,
    max_concurrent: int | None,
    pruner: str | None = None,
    models: list[str] | None = None,
) -> SearchRequest | None:
    """Validate the flow's search parameters before anything runs; None without a search."""
    cv, spaces = check_options(kind, n_iter, cv, search_space)
    pruner = check_optuna(kind, pruner, models or [], spaces)
    if kind == "none":
        return None
    return SearchRequest(
        kind, n_iter, cv, dict(search_space or {}), seed, metric, max_concurrent, pruner
    )
