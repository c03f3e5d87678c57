"""The Prefect tasks: thin wrappers so the same pure functions run on every runner.

Tasks take a small :class:`~ml.data.DatasetRef`, never the data itself, so nothing
large is hashed for cache keys or shipped per task. Results stay in memory (the
flow persists only the winner), so there is no per-task storage I/O.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from ml.data import DatasetRef
from ml.evaluate import TrainReport, train_and_evaluate


@task(
    name="train-model",
    task_run_name="train-{model}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def train_model(
    model: str,
    data: DatasetRef,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    cv: int = 0,
) -> TrainReport:
    """Fit and score one classifier on the run's shared train/test split."""
    return train_and_evaluate(model, data, seed=seed, params=params, cv=cv)
