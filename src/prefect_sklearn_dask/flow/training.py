"""The "train or search" step: submit one task run per model, gather what comes back.

Whatever the data and the method, each model is one task run returning a
:class:`~.ml.evaluate.TrainReport`; this step logs a progress line per finished model,
turns a failed model into a failed row (not a failed comparison) and counts the fits
the cache supplied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run

from prefect_sklearn_dask.bridge import faults
from prefect_sklearn_dask.flow.comparison import prewarm_chart
from prefect_sklearn_dask.flow.fit_cache import FitCache
from prefect_sklearn_dask.flow.run_options import RunOptions
from prefect_sklearn_dask.flow.runner import Run
from prefect_sklearn_dask.flow.training_data import TrainingData
from prefect_sklearn_dask.masking import mask
from prefect_sklearn_dask.ml.evaluate import TrainReport
from prefect_sklearn_dask.ml.registry import by_cost


class TooManyFailures(RuntimeError):
    """More models failed than the run allows."""


@dataclass(frozen=True)
class Outcome:
    """What the models' task runs gave: reports, failures (model -> error) and fit counts.

    ``trained`` is the ``perf_counter`` time the last one finished.
    """

    reports: list[TrainReport]
    failures: dict[str, str]
    reused: int
    fits: int
    trained: float


def train(
    data: TrainingData, run: Run, opts: RunOptions, cache: FitCache | None, logger: Any
) -> Outcome:
    """Submit every model (most expensive first) and gather them as they finish."""
    training = data.training(run, opts, cache)
    with run.submitter(training.in_flow_process, len(opts.names)) as submit_to:
        futures = {
            submit_to.submit(training.task, training.inputs(name)): name
            for name in by_cost(opts.names)
        }
        prewarm_chart()  # the chart's imports while the fits run
        reports, failures, reused = gather(futures, logger, run.client, training.task)
    trained = time.perf_counter()
    fits = len(futures)
    if training.count_fits is not None:
        reused, fits = training.count_fits(reports)
    if cache is not None:
        logger.info(f"reused {reused} of {fits} fits from cache")
        logger.info(cache.describe(reused, fits))
    return Outcome(reports, failures, reused, fits, trained)


def gather(
    futures: dict[PrefectFuture, str], logger: Any, client: Any = None, task: Any = None
) -> tuple[list[TrainReport], dict[str, str], int]:
    """Collect results as they finish, logging a progress line for each.

    A model that raises becomes a failed row, not a failed comparison; one whose Dask
    worker kept dying is also marked ``Failed`` on the server (Prefect leaves it
    Running). A lost scheduler raises ``SchedulerLost`` at once.
    Returns the reports, the failures and how many results came from the fit cache
    (task runs whose final state is Prefect's ``Cached``).
    """
    reports: list[TrainReport] = []
    failures: dict[str, str] = {}
    reused = 0
    total = len(futures)
    for done, future in enumerate(as_completed(list(futures)), start=1):
        name = futures[future]
        try:
            report = future.result()
        except Exception as exc:
            if client is not None and faults.scheduler_lost(exc):
                raise faults.lost_scheduler_error(client, len(reports), total) from None
            failures[name] = mask(faults.describe(name, exc, client))
            if faults.orphaned(future):
                faults.mark_failed(
                    future.task_run_id, failures[name], task, flow_run.id, f"train-{name}", logger
                )
            logger.warning(f"[{done}/{total}] {name:<7} FAILED {failures[name]}")
            continue
        reports.append(report)
        cached = future.state.name == "Cached"
        reused += cached
        logger.info(
            f"[{done}/{total}] {name:<7} f1={report.f1_macro:.4f} "
            f"acc={report.accuracy:.4f} fit={report.fit_seconds:.2f}s"
            + (" (cached)" if cached else "")
        )
    return reports, failures, reused


def check_failures(outcome: Outcome, max_failures: int | None) -> None:
    """Fail the run when nothing trained, or more models failed than ``max_failures``."""
    failures, trained = outcome.failures, len(outcome.reports)
    if not trained or (max_failures is not None and len(failures) > max_failures):
        detail = "; ".join(f"{name}: {err}" for name, err in failures.items())
        allowed = "no model succeeded" if not trained else f"more than {max_failures} allowed"
        raise TooManyFailures(f"{len(failures)} model(s) failed ({allowed}): {detail}")
