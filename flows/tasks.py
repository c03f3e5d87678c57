"""The Prefect tasks: thin wrappers so the same pure functions run on every runner.

Tasks take a small :class:`~ml.data.DatasetRef`, never the data itself, so nothing
large is hashed for cache keys or shipped per task. Results stay in memory (the
flow persists only the winner), so there is no per-task storage I/O.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ml.data import DatasetRef
from ml.evaluate import TrainReport, train_and_evaluate


@task(
    name="train-model",
    task_run_name="train-{model}",
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=True,
)
def train_model(
    model: str,
    data: DatasetRef,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    cv: int = 0,
) -> TrainReport:
    """Fit and score one classifier on the run's shared train/test split.

    One log line before and one print after, so a run's logs show which worker ran
    each model (and that workers' logs reach the server at all).
    """
    get_run_logger().info(f"training {model} on {socket.gethostname()} (pid {os.getpid()})")
    report = train_and_evaluate(model, data, seed=seed, params=params, cv=cv)
    print(f"trained {model}: f1_macro={report.f1_macro:.4f} in {report.fit_seconds:.2f} s")
    return report
