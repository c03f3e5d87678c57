"""``search-<model>`` with ``--search optuna``: the study, its folds as fan-out work, its report.

Called by :func:`~.search_task.search_model` (the same Prefect task run per model). The
trials come from :func:`~.ml.optuna_search.run_study`; their folds go where the other
searches' fits go (:func:`~.bridge.fanout.fold_stream`: the flow's Dask client, a worker's
client, threads), each fold looked up in the fit cache first and stored there when
fitted. With a fit cache the study is kept in SQLite beside it,
``<fit-cache>/<parameter key>/<generation>/search/optuna/<model>.sqlite3``, so it follows
the cache's rules (:mod:`.fit_cache`): a killed run's re-run resumes the study, a
completed run's re-run starts a new one (a new generation), ``--reuse-fits`` loads the
completed one. ``--no-cache`` keeps the study in memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from prefect.artifacts import create_table_artifact

from prefect_sklearn_dask.bridge.fanout import fold_stream
from prefect_sklearn_dask.flow import fit_cache
from prefect_sklearn_dask.flow.search_task import artifact_key
from prefect_sklearn_dask.ml.data import DatasetRef
from prefect_sklearn_dask.ml.optuna_search import (
    StudyOutcome,
    StudyPlan,
    TrialRecord,
    run_study,
)
from prefect_sklearn_dask.ml.optuna_space import OptunaSpace, to_optuna
from prefect_sklearn_dask.ml.search import FitJob, FitResult, short_params

STUDY_DIR = "optuna"
TOP_TRIALS = 10


class CachedFolds:
    """A fold stream that answers folds already in the fit cache without sending them.

    ``reused`` counts the fits an earlier run left; ``repeated`` those this run fitted
    already (TPE may suggest the same point twice on a small discrete space).
    """

    def __init__(self, stream: Any, data: DatasetRef, cache_dir: str | None) -> None:
        self.stream, self.data, self.cache_dir = stream, data, cache_dir
        self.reused = self.repeated = 0
        self._ready: list[tuple[Hashable, FitResult]] = []
        self._sent: set[str] = set()

    def submit(self, tag: Hashable, job: FitJob) -> None:
        key = fit_cache.fit_key(self.data, job) if self.cache_dir else ""
        hit = fit_cache.load(self.cache_dir, key) if self.cache_dir else None
        if hit is not None:
            if key in self._sent:
                self.repeated += 1
            else:
                self.reused += 1
            self._ready.append((tag, hit))
        else:
            self._sent.add(key)
            self.stream.submit(tag, self.data, job, self.cache_dir)

    def completed(self) -> list[tuple[Hashable, FitResult]]:
        if self._ready:
            ready, self._ready = self._ready, []
            return ready
        return self.stream.completed()


def study_name(model: str, space: OptunaSpace, plan_args: dict[str, Any]) -> str:
    """The study's name: the model and a hash of what makes its trials comparable."""
    from optuna.distributions import distribution_to_json

    body = {k: distribution_to_json(d) for k, d in sorted(space.distributions.items())}
    return f"{model}-{fit_cache.parameter_key({'space': body, **plan_args})}"


def study_storage(cache_dir: str | None, model: str) -> str | None:
    """SQLite beside the fit cache's search fits; None (memory) without a fit cache."""
    if not cache_dir:
        return None
    folder = Path(cache_dir) / STUDY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{model}.sqlite3'}"


def progress_line(model: str, scoring: str, n_iter: int, outcome: StudyOutcome) -> str:
    """``svc: 8/16 trials (3 pruned, 0 failed), best f1_macro 0.9852 (C=10.5, ...)``."""
    text = (
        f"{model}: {len(outcome.trials)}/{n_iter} trials ({outcome.count('pruned')} pruned, "
        f"{outcome.count('failed')} failed)"
    )
    best = outcome.best
    if best is not None:
        text += f", best {scoring} {best.value:.4f} ({short_params(best.params)})"
    return text


def top_trials(outcome: StudyOutcome, scoring: str, limit: int = TOP_TRIALS) -> list[dict]:
    """Complete trials best first, then pruned (by their folds so far), then failed."""
    order = {"complete": 0, "pruned": 1, "failed": 2}
    ranked = sorted(
        outcome.trials,
        key=lambda t: (order[t.state], -(0 if math.isnan(t.value) else t.value), t.number),
    )
    rows = []
    for rank, t in enumerate(ranked[:limit], start=1):
        scores = [s for s in t.scores if not math.isnan(s)]
        rows.append(
            {
                "rank": rank,
                "trial": t.number,
                "state": t.state,
                "params": short_params(t.params) or "defaults",
                f"mean_{scoring}": "-" if math.isnan(t.value) else round(t.value, 4),
                "std": round(float(_std(scores)), 4) if scores else "-",
                "folds": len(t.scores),
                "fit_seconds": round(sum(t.fit_seconds) / max(1, len(t.fit_seconds)), 3),
                "error": t.error or "",
            }
        )
    return rows


def _std(scores: list[float]) -> float:
    mean = sum(scores) / len(scores)
    return math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))


def optuna_search(
    model: str,
    data: DatasetRef,
    space: dict[str, Any],
    *,
    n_iter: int,
    cv: int,
    seed: int,
    scoring: str,
    pruner: str,
    cache_dir: str | None,
    max_concurrent: int | None,
    local_jobs: int,
    logger: Any,
) -> tuple[StudyOutcome, dict[str, Any]]:
    """Run the model's study; its outcome and the ``search`` summary of its report."""
    started = time.perf_counter()
    mapped = to_optuna(model, space)
    with fold_stream(
        fit_cache.fit_and_store, local_jobs=local_jobs, key_prefix=f"fit-{model}"
    ) as stream:
        parallel = min(stream.capacity, max_concurrent or stream.capacity)
        plan = StudyPlan(
            model=model,
            scoring=scoring,
            cv=cv,
            seed=seed,
            n_iter=n_iter,
            parallel=parallel,
            pruner=pruner,
            study_name=study_name(
                model, mapped, {"pruner": pruner, "scoring": scoring, "cv": cv, "seed": seed}
            ),
            storage=study_storage(cache_dir, model),
        )
        logger.info(
            f"{model}: optuna search (TPE, {pruner} pruner), {n_iter} trials x {cv} folds, "
            f"{parallel} trials at once; study {plan.study_name}"
            + (f" in {plan.storage.removeprefix('sqlite:///')}" if plan.storage else "")
        )
        step = max(1, math.ceil(n_iter / 10))

        def on_trial(record: TrialRecord, outcome: StudyOutcome) -> None:
            done = len(outcome.trials)
            if done % step == 0 or done == n_iter:
                logger.info(progress_line(model, scoring, n_iter, outcome))

        folds = CachedFolds(stream, data, cache_dir)
        outcome = run_study(plan, mapped, folds, on_trial)
    resumed = sum(t.resumed for t in outcome.trials)
    if folds.repeated:
        logger.info(f"{model}: {folds.repeated} fits repeated a point tried before (read back)")
    if resumed:
        logger.info(
            f"{model}: resumed study {plan.study_name}: {resumed} trials finished earlier "
            "(read from the study, not refitted)"
        )
    seconds = time.perf_counter() - started
    pruned, failed = outcome.count("pruned"), outcome.count("failed")
    failed_fits = sum(math.isnan(s) for t in outcome.trials if not t.resumed for s in t.scores)
    create_table_artifact(
        table=top_trials(outcome, scoring),
        key=artifact_key(model),
        description=(
            f"{model}: optuna search (TPE, {pruner} pruner), top trials by mean CV {scoring}: "
            f"{len(outcome.trials)} trials, {outcome.count('complete')} complete, {pruned} "
            f"pruned, {failed} failed ({outcome.n_fits} fits, {seconds:.1f} s)"
        ),
    )
    best = outcome.best
    summary = {
        "kind": "optuna",
        "scoring": scoring,
        "cv": cv,
        "cv_mean": best.value if best else math.nan,
        "cv_std": _std(best.scores) if best else math.nan,
        "candidates": len(outcome.trials),
        "fits": outcome.n_fits,
        "failed_fits": failed_fits,
        "reused_fits": folds.reused,
        "search_seconds": seconds,
        "pruner": pruner,
        "trials": len(outcome.trials),
        "pruned_trials": pruned,
        "failed_trials": failed,
        "resumed_trials": resumed,
        "study": plan.study_name,
        "storage": plan.storage,
        "history": outcome.history,
    }
    return outcome, summary
