"""Hyper-parameter search as sklearn does it, with the fits handed to any executor.

Candidates come from sklearn's ``ParameterGrid`` / ``ParameterSampler`` (seeded), folds
from ``StratifiedKFold(cv, shuffle=True, random_state=seed)``, scores from sklearn's
scorers; a candidate's mean and std over its folds, its rank and the best candidate follow
``BaseSearchCV`` (rank by mean test score with ``rankdata(method="min")``, NaN means ranked
last, ties to the lowest index). ``halving`` follows ``HalvingRandomSearchCV`` with samples
as the resource, using its own helpers where they exist (``_SubsampleMetaSplitter`` for the
subsampled folds, ``_top_k`` to keep the best third, ``_select_best_index`` for the winner).

What is *not* sklearn's is the fan-out: ``BaseSearchCV.fit`` hands ``(X, y)`` to one
``joblib.Parallel`` call, which under joblib's dask backend ships the arrays with every
batch (joblib #1021) unless they are scattered first. Here a fit is a :class:`FitJob`
of a few hundred bytes (the :class:`~.data.DatasetRef`, the model name, the parameters,
the fold number) and :func:`fit_one` rebuilds its fold's indices from the ref on whichever
process runs it, loading the split once per process (:func:`~.data.load_split`). So bytes
per fit do not grow with the data, and the caller decides where fits run
(``execute``: Dask futures, threads, or a plain loop) and which are already cached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import get_scorer
from sklearn.model_selection import ParameterGrid, ParameterSampler, StratifiedKFold
from sklearn.model_selection._search_successive_halving import (
    BaseSuccessiveHalving,
    _SubsampleMetaSplitter,
    _top_k,
)

from prefect_sklearn_dask.ml.data import DatasetRef, load_split
from prefect_sklearn_dask.ml.errors import DataError, ModelError, UserError
from prefect_sklearn_dask.ml.preprocess import make_model_pipeline
from prefect_sklearn_dask.ml.registry import build_estimator, get_spec
from prefect_sklearn_dask.ml.search_space import Space, parse_space

SearchKind = Literal["grid", "random", "halving"]
# optuna: model-based, trial by trial (ml/optuna_search.py), not sklearn's rules
SEARCH_KINDS: tuple[str, ...] = ("grid", "random", "halving", "optuna")
HALVING_FACTOR = 3
MAGIC_FACTOR = 2  # sklearn's min_resources='smallest': 2 * n_splits * n_classes samples


def scorer_name(metric: str, n_classes: int) -> str:
    """The sklearn scorer for the run's metric (multi-class ROC AUC is one-vs-rest)."""
    return "roc_auc_ovr" if metric == "roc_auc" and n_classes > 2 else metric


@dataclass(frozen=True)
class Fold:
    """One train/test split of the training set, rebuilt from these numbers where it runs.

    ``n_resources`` (halving) subsamples the fold as ``HalvingRandomSearchCV`` does;
    ``None`` is the whole fold.
    """

    cv: int
    index: int
    seed: int
    n_resources: int | None = None


@dataclass(frozen=True)
class FitJob:
    """One candidate on one fold: everything a process needs, and nothing large."""

    model: str
    params: Mapping[str, Any]
    fold: Fold
    scoring: str
    candidate: int
    iteration: int = 0


@dataclass(frozen=True)
class FitResult:
    """A fit's test score (NaN when fitting or scoring raised, with the error)."""

    candidate: int
    iteration: int
    fold: int
    score: float
    fit_seconds: float
    score_seconds: float
    error: str | None = None


@lru_cache(maxsize=32)
def _fold_indices(ref: DatasetRef, fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    y = load_split(ref).y_train
    base = StratifiedKFold(fold.cv, shuffle=True, random_state=fold.seed)
    if fold.n_resources is None:
        splits = base.split(np.zeros(len(y)), y)
    else:
        splits = _SubsampleMetaSplitter(
            base_cv=base,
            fraction=fold.n_resources / len(y),
            subsample_test=True,
            random_state=fold.seed,
        ).split(np.zeros(len(y)), y)
    for index, (train, test) in enumerate(splits):
        if index == fold.index:
            return train, test
    raise IndexError(f"fold {fold.index} of {fold.cv}")


def fit_one(ref: DatasetRef, job: FitJob) -> FitResult:
    """Fit ``job``'s candidate on its fold and score it; a raising candidate scores NaN.

    As ``sklearn.model_selection._validation._fit_and_score`` with ``error_score=nan``:
    the failure is recorded, the search goes on.
    """
    split = load_split(ref)
    train, test = _fold_indices(ref, job.fold)
    X, y = split.X_train, split.y_train
    started = time.perf_counter()
    fit_seconds = score_seconds = 0.0
    try:
        estimator = build_estimator(job.model, job.fold.seed, dict(job.params))
        pipeline = make_model_pipeline(X, estimator, scale=get_spec(job.model).scale)
        pipeline.fit(X.iloc[train], y[train])
        fit_seconds = time.perf_counter() - started
        score = float(get_scorer(job.scoring)(pipeline, X.iloc[test], y[test]))
        score_seconds = time.perf_counter() - started - fit_seconds
    except Exception as exc:
        return FitResult(
            job.candidate,
            job.iteration,
            job.fold.index,
            math.nan,
            fit_seconds or time.perf_counter() - started,
            score_seconds,
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
        )
    return FitResult(
        job.candidate, job.iteration, job.fold.index, score, fit_seconds, score_seconds
    )


def candidates(kind: SearchKind, space: Space, n_iter: int, seed: int) -> list[dict[str, Any]]:
    """The candidates sklearn's search class would try, in its order."""
    if kind == "grid":
        grid = ParameterGrid({k: list(v) for k, v in space.items()})
        if len(grid) == 0:
            raise UserError("the grid is empty; give every parameter at least one value")
        return [_native(p) for p in grid]
    return [_native(p) for p in ParameterSampler(space, n_iter, random_state=seed)]


def _native(params: Mapping[str, Any]) -> dict[str, Any]:
    """numpy scalars as Python numbers (same values), so best params are plain JSON."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


@dataclass(frozen=True)
class Round:
    """One batch of fits: all candidates x folds (grid/random), or one halving iteration."""

    iteration: int
    n_candidates: int
    n_resources: int | None


def halving_plan(n_candidates: int, n_samples: int, cv: int, n_classes: int) -> list[Round]:
    """``HalvingRandomSearchCV(factor=3, min_resources='exhaust', n_candidates=N)``'s rounds.

    Re-implemented from ``BaseSuccessiveHalving.fit`` / ``_run_search`` (sklearn 1.9)
    because they run inside ``fit``; tests check them against the class on the same data.
    """
    factor = HALVING_FACTOR
    min_resources = MAGIC_FACTOR * cv * n_classes
    if min_resources > n_samples:
        raise DataError(
            f"--search halving needs at least {min_resources} training rows "
            f"(2 x --cv x classes), got {n_samples}; lower --cv or use --search random"
        )
    n_required = 1 + math.floor(math.log(n_candidates, factor))
    min_resources = max(min_resources, n_samples // factor ** (n_required - 1))
    n_possible = 1 + math.floor(math.log(n_samples // min_resources, factor))
    rounds, remaining = [], n_candidates
    for itr in range(min(n_possible, n_required)):
        rounds.append(Round(itr, remaining, min(int(factor**itr * min_resources), n_samples)))
        remaining = math.ceil(remaining / factor)
    return rounds


@dataclass
class SearchResult:
    """The search's ``cv_results_``-like rows and its winner."""

    model: str
    kind: str
    scoring: str
    rows: list[dict[str, Any]]
    best_index: int
    n_fits: int
    n_failed: int
    errors: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        return self.rows[self.best_index]

    @property
    def all_failed(self) -> bool:
        return all(math.isnan(r["mean_test_score"]) for r in self.rows)


def aggregate(
    jobs: Sequence[FitJob], results: Sequence[FitResult], n_resources: Sequence[int | None]
) -> list[dict[str, Any]]:
    """One row per (iteration, candidate), in submission order, with sklearn's ranks."""
    by_key: dict[tuple[int, int], dict[str, Any]] = {}
    for job, result in zip(jobs, results, strict=True):
        row = by_key.setdefault(
            (job.iteration, job.candidate),
            {
                "iter": job.iteration,
                "candidate": job.candidate,
                "n_resources": n_resources[job.iteration],
                "params": dict(job.params),
                "scores": [],
                "fit_seconds": [],
                "errors": [],
            },
        )
        row["scores"].append(result.score)
        row["fit_seconds"].append(result.fit_seconds)
        if result.error:
            row["errors"].append(result.error)
    rows = list(by_key.values())
    for row in rows:
        scores = np.asarray(row["scores"], dtype=float)
        row["mean_test_score"] = float(np.mean(scores))
        row["std_test_score"] = float(np.std(scores))
        row["mean_fit_time"] = float(np.mean(row.pop("fit_seconds")))
    means = np.array([r["mean_test_score"] for r in rows])
    if np.isnan(means).all():
        ranks = np.ones(len(rows), dtype=int)
    else:  # as BaseSearchCV._format_results: failed candidates rank last
        ranks = rankdata(-np.nan_to_num(means, nan=np.nanmin(means) - 1), method="min")
    for row, rank in zip(rows, ranks, strict=True):
        row["rank_test_score"] = int(rank)
    return rows


Execute = Callable[[list[FitJob]], list[FitResult]]


@dataclass(frozen=True)
class SearchPlan:
    """A model's candidates and rounds, known before any fit (so progress has a total)."""

    model: str
    kind: SearchKind
    params: list[dict[str, Any]]
    rounds: list[Round]
    cv: int
    seed: int
    scoring: str

    @property
    def n_fits(self) -> int:
        return sum(r.n_candidates for r in self.rounds) * self.cv


def plan_search(
    model: str,
    ref: DatasetRef,
    kind: SearchKind,
    space: Space,
    *,
    n_iter: int,
    cv: int,
    seed: int,
    metric: str,
) -> SearchPlan:
    """The candidates sklearn's search class would try, and its rounds of fits."""
    y = check_folds(ref, cv)
    params = candidates(kind, space, n_iter, seed)
    if kind == "halving":
        rounds = halving_plan(len(params), len(y), cv, ref.n_classes)
    else:
        rounds = [Round(0, len(params), None)]
    return SearchPlan(model, kind, params, rounds, cv, seed, scorer_name(metric, ref.n_classes))


def check_folds(ref: DatasetRef, cv: int) -> np.ndarray:
    """The training labels, once ``cv`` stratified folds are known to fit every class."""
    y = load_split(ref).y_train
    smallest = int(np.bincount(y).min())
    if cv > smallest:
        raise DataError(
            f"--cv {cv} needs at least {cv} training rows per class; the smallest class "
            f"has {smallest}; lower --cv"
        )
    return y


def round_jobs(plan: SearchPlan, rnd: Round, order: Sequence[int]) -> list[FitJob]:
    """The fits of one round: each candidate in ``order`` on each fold, as sklearn orders them."""
    return [
        FitJob(
            plan.model,
            plan.params[c],
            Fold(plan.cv, k, plan.seed, rnd.n_resources),
            plan.scoring,
            c,
            rnd.iteration,
        )
        for c in order
        for k in range(plan.cv)
    ]


def run_search(plan: SearchPlan, execute: Execute) -> SearchResult:
    """Run ``plan``'s rounds through ``execute`` and rank the candidates as sklearn does.

    ``execute`` runs a list of jobs anywhere and returns their results in the same order.
    """
    resources = [r.n_resources for r in plan.rounds]
    jobs: list[FitJob] = []
    results: list[FitResult] = []
    order = list(range(len(plan.params)))  # candidate indices of the current round
    for rnd in plan.rounds:
        batch = round_jobs(plan, rnd, order)
        jobs += batch
        results += execute(batch)
        if rnd is not plan.rounds[-1]:
            rows = aggregate(jobs, results, resources)
            order = _keep_best(rows, rnd.iteration, math.ceil(len(order) / HALVING_FACTOR))
    rows = aggregate(jobs, results, resources)
    if plan.kind == "halving":
        columns = {k: np.array([r[k] for r in rows]) for k in ("iter", "mean_test_score")}
        best = int(BaseSuccessiveHalving._select_best_index(None, None, columns))
    else:
        best = int(np.argmin([r["rank_test_score"] for r in rows]))
    return SearchResult(
        model=plan.model,
        kind=plan.kind,
        scoring=plan.scoring,
        rows=rows,
        best_index=best,
        n_fits=len(results),
        n_failed=sum(math.isnan(r.score) for r in results),
        errors=sorted({e for r in rows for e in r["errors"]}),
    )


def _keep_best(rows: list[dict[str, Any]], itr: int, k: int) -> list[int]:
    """The candidate indices ``_top_k`` keeps for the next halving round, in its order."""
    results = {
        "iter": [r["iter"] for r in rows],
        "mean_test_score": [r["mean_test_score"] for r in rows],
        "params": [r["candidate"] for r in rows],
    }
    return [int(c) for c in _top_k(results, k, itr)]


class AllCandidatesFailed(ModelError):
    """Every candidate of a model's search raised: the model is a failed row."""


def short_params(params: Mapping[str, Any]) -> str:
    """``C=10, gamma=0.01``: numbers to 3 significant digits, for log lines and tables."""
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


class Progress:
    """Counts a search's fits and says, now and then, how far it is and what leads.

    ``line`` returns ``svc: 24/36 fits, best f1_macro 0.951 (C=10)`` at each tenth of the
    plan and at the end (None otherwise), so a 1,000-fit search logs ~10 lines.
    """

    def __init__(self, plan: SearchPlan, metric: str) -> None:
        self.plan, self.metric = plan, metric
        self.done = self.failed = 0
        self._scores: dict[tuple[int, int], list[float]] = {}
        self._step = max(1, math.ceil(plan.n_fits / 10))

    def add(self, job: FitJob, result: FitResult) -> str | None:
        self.done += 1
        self.failed += math.isnan(result.score)
        self._scores.setdefault((job.iteration, job.candidate), []).append(result.score)
        if self.done % self._step and self.done != self.plan.n_fits:
            return None
        return self.line()

    def line(self) -> str:
        complete = {
            key: float(np.mean(scores))
            for key, scores in self._scores.items()
            if len(scores) == self.plan.cv and not np.isnan(scores).any()
        }
        text = f"{self.plan.model}: {self.done}/{self.plan.n_fits} fits"
        if complete:
            (_, candidate), score = max(complete.items(), key=lambda item: item[1])
            text += (
                f", best {self.metric} {score:.3f} ({short_params(self.plan.params[candidate])})"
            )
        if self.failed:
            text += f", {self.failed} failed"
        return text


DEFAULT_SEARCH_CV = 3


def check_options(
    kind: str, n_iter: int, cv: int, raw_space: Mapping[str, Any] | None
) -> tuple[int, dict[str, Space]]:
    """Validate a search request (the CLI and the flow both call this) before any fit.

    Returns the folds to use (``cv=0`` means 3 with a search) and the parsed user space.
    """
    if kind not in ("none", *SEARCH_KINDS):
        raise UserError(f"unknown search {kind!r}; choose from none, {', '.join(SEARCH_KINDS)}")
    if kind == "none":
        if raw_space:
            raise UserError("a search space needs --search grid, random, halving or optuna")
        return cv, {}
    if n_iter < 1:
        raise UserError(f"--n-iter must be at least 1, got {n_iter}")
    cv = cv or DEFAULT_SEARCH_CV
    if cv < 2:
        raise UserError(f"--cv must be at least 2 with --search {kind} (default 3), got {cv}")
    return cv, parse_space(raw_space, kind)
