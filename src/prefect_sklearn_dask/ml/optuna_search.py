"""Optuna's TPE with pruning between folds, driven by ask-and-tell over any fold executor.

A trial is one candidate; its ``cv`` folds run one after another (fold ``k + 1`` only
once fold ``k`` has scored), and after each fold the running mean of its scores is
reported (``trial.report(mean, step=k)``: the objective on the folds so far, which is
what the pruner compares across trials and what TPE reads for a pruned trial) and the
pruner asked (``trial.should_prune()``), so a poor candidate stops after its first
folds. ``parallel`` trials are in flight at once, each holding one fold on a worker
(with ``pruner="none"`` nothing is decided between folds, so a trial's folds go out
together). The folds go to a :class:`FoldRunner` (Dask, a thread pool or a loop:
:func:`~prefect_sklearn_dask.bridge.fanout.fold_stream`); nothing here imports Dask or
Prefect.

Same seed, same trials, whatever finishes first. Folds finish in an order that
depends on the machine, and Optuna's sampler and pruners read the study as it is when
they are called, so the driver fixes what each call sees:

- Trials are *told* in the order they were asked (a trial that finished early waits
  for the ones asked before it), and trial ``i`` is asked right after trial
  ``i - parallel`` is told. So when TPE samples trial ``i`` the study holds exactly
  trials ``0 .. i - parallel`` finished and ``i - parallel + 1 .. i - 1`` running, with
  their parameters: the same on every run. TPE's ``constant_liar`` (Optuna's default)
  counts those running trials as bad results, so trials in flight together are spread
  out instead of sampled next to each other. (``constant_liar`` alone does not make a
  run reproducible: which trials are running or finished at an ask would still depend
  on timing; telling in ask order is what fixes it.)
- The pruner of trial ``i`` sees the trials finished when ``i`` was asked, and ``i``
  itself (a storage view, :func:`_trials_before_class`): a later trial that happens to
  finish first does not change the decision. Hyperband's rung records live on the
  trials, and are read through the same view.
- The sampler is reseeded per trial from ``(seed, trial number)``: trial ``i``'s
  parameters depend on the seed and what the study held, not on how many asks came
  before in this process.

The price: a trial that runs long holds back the ``ask`` of the trials behind it
(up to ``parallel - 1`` slots can sit idle until it is told). Pruning shortens those
trials, and with the seed the run is reproducible, which ``tell`` in finishing order
would not be.

A study kept in a database (``storage``: ``sqlite:///...``, :class:`_StoredStudy`)
resumes: a re-run loads it (``load_if_exists``) and, the driver being deterministic,
replays the same asks, answering the stored trials' folds from the database; the first
trial it does not hold is new work. The driver itself asks and tells an in-memory copy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
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
    resumed: bool = False  # taken whole from the stored study (an earlier run's)

    @property
    def value(self) -> float:
        """The mean CV score (complete trials); the folds' mean so far otherwise."""
        finite = [s for s in self.scores if not math.isnan(s)]
        return float(np.mean(finite)) if finite and self.state != "failed" else math.nan


@dataclass
class StudyOutcome:
    """All trials of the study (this run's and earlier runs'), in trial order."""

    trials: list[TrialRecord]
    n_fits: int = 0  # folds this run sent out (fitted, or read back from the fit cache)
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


def _rdb(url: str):
    """Optuna's RDB storage; on SQLite in WAL mode with ``synchronous=NORMAL``, so a
    commit costs no fsync and still survives the process being killed (what resuming is
    for); only an OS crash can lose the last commits."""
    from optuna.storages import RDBStorage
    from sqlalchemy import event

    storage = RDBStorage(url)
    if url.startswith("sqlite"):

        def pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(storage.engine, "connect", pragmas)
        storage.engine.dispose()  # the connection the schema was made on had the defaults
    return storage


class _StoredStudy:
    """The study in its database: finished trials only, written in trial order.

    The driver works on an in-memory copy (a report, a prune check and a tell per fold
    against SQLite measured ~120-170 ms per fold on the loaded 2-core machine, against
    ~14 ms in memory) and writes each trial here once, when it is told. Tells are in
    trial order, so after a kill the database holds trials ``0 .. k - 1``: a re-run
    replays the same asks (same seed, same views), takes those trials' fold scores from
    here instead of fitting, and goes on from trial ``k``; a trial that was running
    when the run died is asked again with the same parameters, and the folds it had
    finished come from the fit cache.
    """

    def __init__(self, url: str, name: str) -> None:
        import optuna

        self.study = optuna.create_study(
            study_name=name, storage=_rdb(url), direction="maximize", load_if_exists=True
        )
        self.trials = {
            t.number: t
            for t in self.study.get_trials(deepcopy=False)
            if t.state.is_finished() and FOLD_SCORES in t.user_attrs
        }
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="optuna-study")
        self._pending: list[Future] = []

    def fold(self, number: int, params: dict[str, Any], k: int) -> FitResult | None:
        """Fold ``k`` of trial ``number`` as stored, if that trial had these params."""
        stored = self.trials.get(number)
        if stored is None or stored.params != params:
            return None
        scores = stored.user_attrs[FOLD_SCORES]
        if k >= len(scores):
            return None
        seconds = stored.user_attrs.get(FIT_SECONDS, [0.0] * len(scores))
        return FitResult(number, 0, k, float(scores[k]), float(seconds[k]), 0.0)

    def add(self, trial: Any) -> None:
        """Keep a finished trial (a trial replayed from here is not written twice).

        Written by one background thread, in order (~65 ms a trial on the loaded
        machine): the driver asks the next trial meanwhile. Nothing reads the
        database during the run.
        """
        if trial.number not in self.trials:
            self._pending.append(self._writer.submit(self.study.add_trial, trial))

    def close(self) -> None:
        """Wait for the writes (re-raising a failed one), then stop the writer."""
        try:
            for write in self._pending:
                write.result()
        finally:
            self._writer.shutdown()


def open_study(plan: StudyPlan):
    """The in-memory study the driver asks and tells, with its ordered pruner."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)  # the search logs its own progress
    storage = optuna.storages.InMemoryStorage()
    gate = _OrderedPruner(make_pruner(plan.pruner, plan.cv), storage)
    study = optuna.create_study(
        study_name=plan.study_name, storage=storage, direction="maximize", pruner=gate
    )
    return study, gate


@dataclass
class _Live:
    trial: Any
    params: dict[str, Any]
    folds: dict[int, FitResult] = field(default_factory=dict)
    state: str | None = None
    error: str | None = None
    resumed: bool = False

    @property
    def scores(self) -> list[float]:
        return [self.folds[k].score for k in sorted(self.folds)]

    @property
    def fit_seconds(self) -> list[float]:
        return [self.folds[k].fit_seconds for k in sorted(self.folds)]


def run_study(
    plan: StudyPlan,
    space: OptunaSpace,
    runner: FoldRunner,
    on_trial: Callable[[TrialRecord, StudyOutcome], None] | None = None,
) -> StudyOutcome:
    """Run ``plan.n_iter`` trials (those a stored study has are replayed, not refitted).

    ``on_trial`` is called as each trial is told, in trial order (progress lines).
    """
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState

    study, gate = open_study(plan)
    stored = _StoredStudy(plan.storage, plan.study_name) if plan.storage else None
    outcome = StudyOutcome([])
    asked: list[_Live] = []
    startup = startup_trials(plan.n_iter)
    ready: list[tuple[tuple[int, int], FitResult]] = []
    # nothing to decide between folds without a pruner: a trial's folds go out together
    all_at_once = plan.pruner == "none"

    def ask() -> None:
        number = len(asked)
        study.sampler = TPESampler(
            seed=trial_seed(plan.seed, number), n_startup_trials=startup, constant_liar=True
        )
        trial = study.ask(space.distributions)
        # the pruner of this trial sees the trials told by now: all before the first
        # one still untold
        told = len(outcome.trials)
        gate.horizon[trial.number] = asked[told].trial.number if told < len(asked) else number
        resumed = stored is not None and number in stored.trials
        asked.append(_Live(trial, space.decode(trial.params), resumed=resumed))
        for k in range(plan.cv if all_at_once else 1):
            submit(number, k)

    def submit(index: int, k: int) -> None:
        live = asked[index]
        kept = stored.fold(index, live.trial.params, k) if stored else None
        if kept is not None:
            ready.append(((index, k), kept))
            return
        live.resumed = False  # this trial needs fits: it is (partly) new work
        fold = Fold(plan.cv, k, plan.seed)
        runner.submit((index, k), FitJob(plan.model, live.params, fold, plan.scoring, index))

    def top_up() -> None:
        while len(asked) < plan.n_iter and len(asked) - len(outcome.trials) < plan.parallel:
            ask()

    def finish(index: int, k: int, result: FitResult, fitted: bool) -> None:
        live = asked[index]
        live.folds[k] = result
        outcome.n_fits += fitted
        if all_at_once and len(live.folds) < plan.cv:
            return  # reported once all are back, in fold order
        for step in range(plan.cv) if all_at_once else (k,):
            if math.isnan(live.folds[step].score):
                live.state = "failed"
                live.error = live.folds[step].error or "the fold scored NaN"
                return
            live.trial.report(float(np.mean(live.scores[: step + 1])), step=step)
        if len(live.folds) == plan.cv:
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
        if stored is not None:
            stored.add(study.get_trials(deepcopy=False)[trial.number])
        record = TrialRecord(
            trial.number,
            live.state,
            live.params,
            live.scores,
            live.fit_seconds,
            live.error,
            resumed=live.resumed,
        )
        outcome.trials.append(record)
        if on_trial:
            on_trial(record, outcome)

    def drive() -> None:
        top_up()
        while len(outcome.trials) < len(asked):
            while ready:  # answered from the stored study, no fit
                (index, k), result = ready.pop(0)
                finish(index, k, result, fitted=False)
            if not ready and any(live.state is None for live in asked):
                for (index, k), result in runner.completed():
                    finish(index, k, result, fitted=True)
            while len(outcome.trials) < len(asked) and asked[len(outcome.trials)].state:
                tell(asked[len(outcome.trials)])
                top_up()  # trial i is asked right after trial i - parallel is told

    try:
        drive()
    finally:
        if stored is not None:
            stored.close()
    outcome.history = history(outcome.trials)
    return outcome


def history(trials: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    """Per trial in order: its state, its score (folds so far when pruned), the best so
    far, its folds and parameters (the chart; the benchmark refits the same trials)."""
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
                "folds": len(t.scores),
                "params": t.params,
            }
        )
    return rows
