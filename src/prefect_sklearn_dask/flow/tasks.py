"""The Prefect tasks: thin wrappers so the same pure functions run on every runner.

Tasks take a small :class:`~.ml.data.DatasetRef`, never the data itself, so nothing
large is hashed for cache keys or shipped per task.

Each finished fit is persisted (joblib) under a cache key made of the task's inputs
(model, hyper-parameters, seed, CV folds and the ``DatasetRef``, whose sha256
fingerprint changes with the data) and the task's source; which earlier fits a run
reuses is :mod:`.fit_cache`'s rule. Changed data, parameters or code miss the cache.
"""

from __future__ import annotations

import os
import socket
from contextlib import nullcontext
from typing import Any

from prefect import get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.tasks import exponential_backoff

from prefect_sklearn_dask.flow.fit_cache import FIT_CACHE
from prefect_sklearn_dask.flow.model_store import JoblibSerializer
from prefect_sklearn_dask.masking import mask
from prefect_sklearn_dask.ml.data import DatasetRef
from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.ml.evaluate import TrainReport, train_and_evaluate

TRAIN_RETRIES = 2


def is_transient(task, task_run, state) -> bool:
    """Retry infrastructure hiccups, not mistakes: bad data or parameters fail the same again."""
    try:
        state.result()
    except UserError:
        return False
    except Exception:
        return True
    return False


# The retry policy of every task that trains (plain fits, searches, partitioned models):
# transient failures back off and retry, user errors fail at once.
TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": TRAIN_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_transient,
}


@task(
    name="train-model",
    task_run_name="train-{model}",
    cache_policy=FIT_CACHE,
    persist_result=True,
    result_serializer=JoblibSerializer(),
    **TRANSIENT_RETRIES,
)
def train_model(
    model: str,
    data: DatasetRef,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    cv: int = 0,
    limit: str | None = None,
) -> TrainReport:
    """Fit and score one classifier on the run's shared train/test split.

    ``limit`` names a Prefect global concurrency limit whose slot the fit holds, so a
    cap on simultaneous fits holds on every runner, Dask workers included. A log line
    before and after show which worker ran each model (and that workers' logs reach
    the server at all). Not ``print`` with ``log_prints``: Prefect swaps
    ``builtins.print`` for the task's duration and restores what it saw, so tasks on
    the thread pool restore each other's swap and a print reached stdout, breaking
    ``train.py --json`` (2 of 4 runs of the default job on threads).
    """
    logger = get_run_logger()
    logger.info(f"training {model} on {socket.gethostname()} (pid {os.getpid()})")
    with concurrency(limit, occupy=1, strict=True) if limit else nullcontext():
        try:
            report = train_and_evaluate(model, data, seed=seed, params=params, cv=cv)
        except Exception as exc:
            # The exception becomes the task run's state message on the server and a
            # persisted result: mask secrets in it here, keeping its type (for retries).
            exc.args = tuple(mask(a) if isinstance(a, str) else a for a in exc.args)
            raise
    logger.info(f"trained {model}: f1_macro={report.f1_macro:.4f} in {report.fit_seconds:.2f} s")
    return report
