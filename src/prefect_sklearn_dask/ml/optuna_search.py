"""Optuna's TPE with pruning between folds, driven by ask-and-tell over any fold executor.

A trial is one candidate; its ``cv`` folds run one after another (fold ``k + 1`` only
once fold ``k`` has scored), and after each fold the running mean of its scores is
reported (``trial.report(mean, step=k)``) and the pruner asked (``trial.should_prune()``),
so a poor candidate stops after its first folds. ``parallel`` trials are in flight at
once, each holding one fold on a worker; the folds go to a :class:`FoldRunner` (Dask, a
thread pool or a loop: :func:`~prefect_sklearn_dask.bridge.fanout.fold_stream`), and
nothing here imports Dask or Prefect.

Same seed, same trials, whatever finishes first. Folds finish in an order that
depends on the machine, and Optuna's sampler and pruners read the study as it is when
they are called, so the driver fixes what each call sees:

- Trials are *told* in the order they were asked (a trial that finished early waits
  for the ones asked before it), and trial ``i`` is asked right after trial
  ``i - parallel`` is told. So when TPE samples trial ``i`` the study holds exactly
  trials ``0 .. i - parallel`` finished and ``i - parallel + 1 .. i - 1`` running, with
  their parameters: the same on every run. TPE's ``constant_liar`` (Optuna's default)
  counts those running trials as bad results, so trials in flight together are spread
  out instead of sampled next to each other.
- The pruner of trial ``i`` sees the trials finished when ``i`` was asked, and ``i``
  itself (:class:`_TrialsBefore`): a later trial that happens to finish first does not
  change the decision. Hyperband's rung records live on the trials, and are read
  through the same view.
- The sampler is reseeded per trial from ``(seed, trial number)``, so a resumed study
  does not replay the random numbers of the trials it already has.

The price: a trial that runs long holds back the ``ask`` of the trials behind it
(up to ``parallel - 1`` slots can sit idle until it is told). Pruning shortens those
trials, and with the seed the run is reproducible, which ``tell`` in finishing order
would not be.

A study kept in a database (``storage``: ``sqlite:///...``) resumes: a re-run loads it
(``load_if_exists``), counts its finished trials towards ``n_iter``, marks the trials a
killed run left running as failed and asks their parameters again first (their
finished folds come back from the fit cache, not from a refit).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

import numpy as np

from prefect_sklearn_dask.ml.optuna_space import OptunaSpace
from prefect_sklearn_dask.ml.search import FitJob, FitResult, Fold

FOLD_SCORES = "fold_scores"  # user attr of every trial this driver finished
FIT_SECONDS = "fit_seconds"
ERROR = "error"


class FoldRunner(Protocol):
    """Where a trial's folds run: submit fits, take back the finished ones."""

    def submit(self, tag: Hashable, job: FitJob) -> None:
        """Start ``job``; its result comes back from :meth:`completed` under ``tag``."""

    def completed(self) -> list[tuple[Hashable, FitResult]]:
        """Block until at least one submitted fit has finished; return those that have."""


@dataclass(frozen=True)
class StudyPlan:
    """One model's Optuna search: what to fit, how many trials, how many at once."""

    model: str
    scoring: str
    cv: int
    seed: int
    n_iter: int
    parallel: int
    pruner: str
    study_name: str
    storage: str | None = None  # an RDB URL; None keeps the study in memory


@dataclass
class TrialRecord:
    """A finished trial as the search reports it (table, chart, progress)."""

    number: int
    state: str  # "complete", "pruned", "failed"
    params: dict[str, Any]
    scores: list[float]
    fit_seconds: list[float]
    error: str | None = None
    resumed: bool = False  # finished by an earlier run of this study

    @property
    def value(self) -> float:
        """The mean CV score (complete trials); the folds' mean so far otherwise."""
        finite = [s for s in self.scores if not math.isnan(s)]
        return float(np.mean(finite)) if finite and self.state != "failed" else math.nan


@dataclass
class StudyOutcome:
    """All trials of the study (this run's and earlier runs'), in trial order."""

    trials: list[TrialRecord]
    interrupted: int = 0  # trials a killed run left running, asked again
    n_fits: int = 0  # folds fitted or read back by this run
    history: list[dict[str, Any]] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    @property
    def best(self) -> TrialRecord | None:
        complete = [t for t in self.trials if t.state == "complete"]
        return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def make_pruner(name: str, cv: int):
    """Optuna's pruner for ``--pruner``; folds are its steps (Hyperband's resource)."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cv, reduction_factor=3)
    return optuna.pruners.NopPruner()


def startup_trials(n_iter: int) -> int:
    """TPE's random start: Optuna's 10, fewer for small budgets (a third of them)."""
    return min(10, max(2, n_iter // 3))


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


@cache
def _trials_before_class() -> type:
    """The view class, built on first use so importing this module does not import Optuna."""
    from optuna.storages import BaseStorage

    class TrialsBefore(BaseStorage):
        """``storage`` as the pruner of one trial should see it: the trials numbered below
        ``horizon`` (those finished when that trial was asked) and the trial itself.
        Everything else, writes included (Hyperband's rung records), goes to ``storage``."""

        def __init__(self, storage: Any, horizon: int, number: int) -> None:
            self.inner, self.horizon, self.number = storage, horizon, number

        def get_all_trials(self, study_id, deepcopy=True, states=None):
            trials = self.inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)
            return [t for t in trials if t.number < self.horizon or t.number == self.number]

    def delegate(name: str) -> Callable[..., Any]:
        return lambda self, *args, **kwargs: getattr(self.inner, name)(*args, **kwargs)

    for name in BaseStorage.__abstractmethods__ - {"get_all_trials"}:
        setattr(TrialsBefore, name, delegate(name))
    TrialsBefore.__abstractmethods__ = frozenset()
    return TrialsBefore


class _OrderedPruner:
    """Optuna's pruner, each trial's decisions made on the study as of that trial's ask."""

    def __init__(self, inner: Any, storage: Any) -> None:
        self.inner, self.storage = inner, storage
        self.horizon: dict[int, int] = {}

    def prune(self, study: Any, trial: Any) -> bool:
        import optuna

        view = _trials_before_class()(self.storage, self.horizon[trial.number], trial.number)
        return self.inner.prune(
            optuna.Study(study.study_name, storage=view, sampler=study.sampler, pruner=self.inner),
            trial,
        )


def open_study(plan: StudyPlan):
    """Create or load the study (``load_if_exists``) with its ordered pruner."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)  # the search logs its own progress
    storage = optuna.storages.get_storage(plan.storage)
    gate = _OrderedPruner(make_pruner(plan.pruner, plan.cv), storage)
    study = optuna.create_study(
        study_name=plan.study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        pruner=gate,
    )
    return study, gate


def _record(trial: Any, decode: Callable[[dict], dict], resumed: bool) -> TrialRecord:
    state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(trial.state.name, "failed")
    return TrialRecord(
        number=trial.number,
        state=state,
        params=decode(trial.params),
        scores=list(trial.user_attrs.get(FOLD_SCORES, [])),
        fit_seconds=list(trial.user_attrs.get(FIT_SECONDS, [])),
        error=trial.user_attrs.get(ERROR),
        resumed=resumed,
    )


def _resume(study: Any) -> tuple[list[Any], int]:
    """Finished trials of earlier runs, and how many a killed run left running.

    Those are told ``FAIL`` (without fold scores: not counted as trials) and their
    parameters enqueued, so the next asks try them again, folds from the fit cache.
    """
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    finished = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and FOLD_SCORES in t.user_attrs
    ]
    return finished, len(stale)


@dataclass
class _Live:
    trial: Any
    params: dict[str, Any]
    scores: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    state: str | None = None
    error: str | None = None


def run_study(
    plan: StudyPlan,
    space: OptunaSpace,
    runner: FoldRunner,
    on_trial: Callable[[TrialRecord, StudyOutcome], None] | None = None,
) -> StudyOutcome:
    """Run ``plan.n_iter`` trials (counting those a stored study already has).

    ``on_trial`` is called as each trial is told, in trial order (progress lines).
    """
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState

    study, gate = open_study(plan)
    earlier, interrupted = _resume(study)
    outcome = StudyOutcome([_record(t, space.decode, True) for t in earlier], interrupted)
    to_ask = max(0, plan.n_iter - len(earlier))
    asked: list[_Live] = []
    told = 0
    startup = startup_trials(plan.n_iter)

    def ask() -> None:
        number = len(study.get_trials(deepcopy=False))  # the new trial's number if sampled
        study.sampler = TPESampler(
            seed=trial_seed(plan.seed, number), n_startup_trials=startup, constant_liar=True
        )
        trial = study.ask(space.distributions)
        horizon = asked[told].trial.number if told < len(asked) else trial.number
        gate.horizon[trial.number] = horizon
        asked.append(_Live(trial, space.decode(trial.params)))
        submit(len(asked) - 1, 0)

    def submit(index: int, k: int) -> None:
        live = asked[index]
        fold = Fold(plan.cv, k, plan.seed)
        runner.submit(
            (index, k), FitJob(plan.model, live.params, fold, plan.scoring, live.trial.number)
        )

    def top_up() -> None:
        nonlocal to_ask
        while to_ask and len(asked) - told < plan.parallel:
            to_ask -= 1
            ask()

    def finish(index: int, k: int, result: FitResult) -> None:
        live = asked[index]
        live.scores.append(result.score)
        live.fit_seconds.append(result.fit_seconds)
        outcome.n_fits += 1
        if math.isnan(result.score):
            live.state, live.error = "failed", result.error or "the fold scored NaN"
            return
        live.trial.report(float(np.mean(live.scores)), step=k)
        if len(live.scores) == plan.cv:
            live.state = "complete"
        elif live.trial.should_prune():
            live.state = "pruned"
        else:
            submit(index, k + 1)

    def tell(live: _Live) -> None:
        trial = live.trial
        trial.set_user_attr(FOLD_SCORES, live.scores)
        trial.set_user_attr(FIT_SECONDS, live.fit_seconds)
        if live.error:
            trial.set_user_attr(ERROR, live.error)
        if live.state == "complete":
            study.tell(trial, float(np.mean(live.scores)))
        else:
            state = TrialState.PRUNED if live.state == "pruned" else TrialState.FAIL
            study.tell(trial, state=state)
        record = TrialRecord(
            trial.number, live.state, live.params, live.scores, live.fit_seconds, live.error
        )
        outcome.trials.append(record)
        if on_trial:
            on_trial(record, outcome)

    top_up()
    while told < len(asked):
        for (index, k), result in runner.completed():
            finish(index, k, result)
        while told < len(asked) and asked[told].state:
            tell(asked[told])
            told += 1
            top_up()  # trial i is asked right after trial i - parallel is told
    outcome.trials.sort(key=lambda t: t.number)
    outcome.history = history(outcome.trials)
    return outcome


def history(trials: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    """Per trial in order: its state, its score (folds so far when pruned), best so far."""
    best = -math.inf
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == "complete":
            best = max(best, t.value)
        rows.append(
            {
                "trial": t.number,
                "state": t.state,
                "value": None if math.isnan(t.value) else round(t.value, 6),
                "best": None if best == -math.inf else round(best, 6),
            }
        )
    return rows
