"""Build the Prefect task runner a run asked for: the same tasks run on each.

The runner is chosen per flow run from its parameters (not fixed at decoration),
so a deployment can be triggered with ``-p runner=dask`` or ``-p runner=threads``.
"""

from __future__ import annotations

from typing import Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from cluster.local import default_workers, local_cluster_kwargs
from cluster.remote import normalize_address

RunnerName = Literal["sequential", "threads", "dask"]
RUNNERS: tuple[str, ...] = ("sequential", "threads", "dask")


def build_task_runner(
    runner: RunnerName,
    workers: int | None = None,
    address: str | None = None,
    stock_dask: bool = False,
) -> TaskRunner:
    """``sequential``: one thread; ``threads``: Prefect's thread pool; ``dask``: a
    ``LocalCluster`` of worker processes, or the scheduler at ``address``.

    ``dask`` uses :class:`flows.fast_dask.FastDaskTaskRunner` (same task runs on the
    server, ~10x less per-task overhead); ``stock_dask=True`` picks prefect-dask's own
    ``DaskTaskRunner``, which the benchmarks compare against."""
    if runner == "sequential":
        return ThreadPoolTaskRunner(max_workers=1)
    if runner == "threads":
        return ThreadPoolTaskRunner(max_workers=workers or default_workers())
    if runner == "dask":
        if stock_dask:
            from prefect_dask import DaskTaskRunner
        else:
            from flows.fast_dask import FastDaskTaskRunner as DaskTaskRunner

        if address:
            return DaskTaskRunner(address=normalize_address(address))
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs=local_cluster_kwargs(workers),
        )
    raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")


def dashboard_url(task_runner: TaskRunner) -> str | None:
    """The Dask dashboard of a started Dask runner (None for thread runners)."""
    client = getattr(task_runner, "client", None)
    return client.dashboard_link if client is not None else None
