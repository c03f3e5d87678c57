"""Build the Prefect task runner a run asked for: the same tasks run on each.

The runner is chosen per flow run from its parameters (not fixed at decoration),
so a deployment can be triggered with ``-p runner=dask`` or ``-p runner=threads``.
Every parameter is plain JSON (paths and strings); the Dask objects are built here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from prefect_sklearn_dask.cluster.adaptive import parse_adapt
from prefect_sklearn_dask.cluster.config import load_config
from prefect_sklearn_dask.cluster.local import (
    check_memory,
    default_workers,
    local_cluster_kwargs,
)
from prefect_sklearn_dask.cluster.remote import check_address, tls_security
from prefect_sklearn_dask.ml.errors import UserError

if TYPE_CHECKING:
    from distributed.security import Security

RunnerName = Literal["sequential", "threads", "dask"]
RUNNERS: tuple[str, ...] = ("sequential", "threads", "dask")


def check_cluster_options(
    address: str | None,
    adapt: str | None,
    cluster_config: str | None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    worker_memory: str | None = None,
) -> Security | None:
    """The rules between the cluster options, in one place: the CLI checks them before it
    starts anything, a deployment's flow run when it builds its runner. Returns the TLS
    ``Security`` the three PEM files make (None without them)."""
    if worker_memory:
        check_memory(worker_memory)
        if address or cluster_config:
            raise UserError(
                "--worker-memory sizes the workers of a new local cluster; workers at "
                "--address or from --cluster-config set their own (dask worker --memory-limit)"
            )
    chosen = [
        flag
        for flag, value in (
            ("--address", address),
            ("--adapt", adapt),
            ("--cluster-config", cluster_config),
        )
        if value
    ]
    if len(chosen) > 1:
        raise UserError(f"choose one of {' and '.join(chosen)}")
    security = tls_security(tls_ca, tls_cert, tls_key)
    if security is not None and not address:
        raise UserError("--tls-ca/--tls-cert/--tls-key need --address tls://HOST:PORT")
    return security


def build_task_runner(
    runner: RunnerName,
    workers: int | None = None,
    address: str | None = None,
    *,
    adapt: str | None = None,
    cluster_config: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    performance_report_path: str | None = None,
    stock_dask: bool = False,
    worker_memory: str | None = None,
) -> TaskRunner:
    """``sequential``: one thread; ``threads``: Prefect's thread pool; ``dask``: a
    ``LocalCluster`` of worker processes (fixed, or adaptive ``MIN:MAX``), the scheduler
    at ``address`` (TLS with the three PEM files), or the cluster a YAML config names.

    ``dask`` uses :class:`~.fast_dask.FastDaskTaskRunner` (the same task runs on the
    server, ~10x less per-task overhead); ``stock_dask=True`` picks prefect-dask's own
    ``DaskTaskRunner``, which the benchmarks compare against. ``worker_memory`` is each
    new local worker's Dask memory limit (``1500MB``)."""
    if runner == "sequential":
        return ThreadPoolTaskRunner(max_workers=1)
    if runner == "threads":
        return ThreadPoolTaskRunner(max_workers=workers or default_workers())
    if runner != "dask":
        raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")

    if stock_dask:
        from prefect_dask import DaskTaskRunner
    else:
        from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner as DaskTaskRunner

    security = check_cluster_options(
        address, adapt, cluster_config, tls_ca, tls_cert, tls_key, worker_memory
    )
    client_kwargs = {"security": security} if security is not None else None
    common = {"client_kwargs": client_kwargs, "performance_report_path": performance_report_path}
    if address:
        return DaskTaskRunner(address=check_address(address, security), **common)
    if cluster_config:
        config = load_config(cluster_config)
        return DaskTaskRunner(
            cluster_class=config.cluster_class,
            cluster_kwargs=config.cluster_kwargs,
            adapt_kwargs=config.adapt_kwargs,
            **common,
        )
    adapt_kwargs = parse_adapt(adapt) if adapt else None
    kwargs = local_cluster_kwargs(workers, worker_memory=worker_memory)
    if adapt_kwargs:
        kwargs["n_workers"] = adapt_kwargs["minimum"]
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs=kwargs,
        adapt_kwargs=adapt_kwargs,
        **common,
    )


def describe_cluster(
    runner: str, address: str | None, adapt: str | None, cluster_config: str | None
) -> str | None:
    """How a run's Dask cluster was made, for the summary (adaptive runs are labelled)."""
    if runner != "dask":
        return None
    if address:
        return f"scheduler at {address}"
    if cluster_config:
        return f"cluster config {cluster_config}"
    if adapt:
        return f"adaptive LocalCluster {adapt} workers"
    return "new LocalCluster"


def dask_client(task_runner: TaskRunner):
    """The Dask client of a Dask runner (started on first access), None for threads."""
    return getattr(task_runner, "client", None)


def dashboard_url(task_runner: TaskRunner) -> str | None:
    """The Dask dashboard of a started Dask runner (None for thread runners)."""
    client = dask_client(task_runner)
    return client.dashboard_link if client is not None else None
