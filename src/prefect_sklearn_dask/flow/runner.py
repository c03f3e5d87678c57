"""Open a run's task runner and say where its task runs are submitted.

``train-flow`` submits each model's task run to one of two places (:meth:`Run.submitter`):

- the flow's task runner (plain fits: a ``train-model`` task run on a Dask worker or a
  thread), with the Dask workers warmed first;
- a thread pool in the flow's own process (searches; any task that drives Dask work
  itself), each task sending its work to the cluster through the flow's ``client``.
  Measured faster than driving fits from a worker: see :mod:`~.bridge.fanout`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from prefect_sklearn_dask.bridge import faults
from prefect_sklearn_dask.bridge.fanout import fits_on
from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner
from prefect_sklearn_dask.bridge.runners import build_task_runner, dask_client
from prefect_sklearn_dask.bridge.workers import flush_worker_logs, prepare_workers
from prefect_sklearn_dask.cluster.run_files import PageServer, page_server
from prefect_sklearn_dask.flow.model_store import MODEL_DIR
from prefect_sklearn_dask.flow.run_options import RunOptions

CONCURRENCY_LIMIT = "train-model"
REPORT_NAME = "dask-performance-report.html"


@dataclass(frozen=True)
class Run:
    """A started task runner and what the run learnt while starting it.

    ``client`` is the Dask client (None for threads); ``limit`` the name of the global
    concurrency limit every plain fit holds a slot of (None without ``max_concurrent``);
    ``ready`` the ``perf_counter`` time the runner was ready; ``pages`` where the
    long-lived cluster serves the run's HTML pages (None where none runs).
    """

    task_runner: TaskRunner
    client: Any
    dashboard: str | None
    report: Path | None
    limit: str | None
    started: float
    ready: float
    max_concurrent: int | None
    pages: PageServer | None = None

    def page_url(self, path: Path) -> str | None:
        """``path``'s http URL on the long-lived cluster, or None."""
        return self.pages.url_for(path) if self.pages else None

    def request_report(self, code: str) -> None:
        """Have the scheduler draw the performance report now, while the flow publishes
        its results; the runner's exit writes it (:class:`~.fast_dask.PerformanceReport`).
        ``code`` is what the report shows as the calling code. A runner that keeps no
        report does nothing."""
        if isinstance(self.task_runner, FastDaskTaskRunner):
            self.task_runner.request_performance_report(code)

    @contextlib.contextmanager
    def submitter(self, in_flow_process: bool, n_models: int) -> Iterator[Any]:
        """The task runner to submit ``n_models`` task runs to.

        ``in_flow_process``: on Dask, a thread pool in the flow's process, each task's
        fan-outs sent to the cluster through the flow's client, ``max_concurrent`` calls
        at once in all; otherwise the flow's own runner, whose threads already share one
        capped pool. Without it: the flow's runner, its Dask workers warmed first.
        """
        if not in_flow_process:
            if isinstance(self.task_runner, FastDaskTaskRunner):
                with faults.lost_scheduler_fails_fast(self.client, 0, n_models):
                    self.task_runner.warm_workers()
            yield self.task_runner
            return
        if self.client is None:
            yield self.task_runner
            return
        with (
            fits_on(self.client, self.max_concurrent),
            ThreadPoolTaskRunner(max_workers=n_models) as drivers,
        ):
            yield drivers


def set_concurrency_limit(limit: int) -> str:
    """Create or resize the global concurrency limit every training task holds a slot of."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(CONCURRENCY_LIMIT, limit)
    return CONCURRENCY_LIMIT


@contextlib.contextmanager
def open_runner(opts: RunOptions, run_id: str) -> Iterator[Run]:
    """Start the run's task runner (its Dask cluster, the workers fit to run our tasks).

    Dask runs save a performance report next to the run's model. On a clean exit the
    workers' buffered logs are flushed to the server. A lost scheduler surfaces as
    ``SchedulerLost``: closing a runner whose scheduler is gone raises its own error
    over ours.
    """
    limit = set_concurrency_limit(opts.max_concurrent) if opts.max_concurrent else None
    report = None
    if opts.runner == "dask" and opts.performance_report:
        report = opts.storage_root / MODEL_DIR / run_id / REPORT_NAME
        report.parent.mkdir(parents=True, exist_ok=True)
    api_url = get_current_settings().api.url
    started = time.perf_counter()
    task_runner = build_task_runner(
        opts.runner,
        opts.workers,
        opts.address,
        adapt=opts.adapt,
        cluster_config=opts.cluster_config,
        tls_ca=opts.tls_ca,
        tls_cert=opts.tls_cert,
        tls_key=opts.tls_key,
        performance_report_path=str(report) if report else None,
        worker_memory=opts.worker_memory,
    )
    try:
        with task_runner:
            client = dask_client(task_runner)
            if client is not None:
                prepare_workers(client, str(api_url) if api_url else None, opts.upload_code)
            yield Run(
                task_runner=task_runner,
                client=client,
                dashboard=client.dashboard_link if client is not None else None,
                report=report,
                limit=limit,
                started=started,
                ready=time.perf_counter(),
                max_concurrent=opts.max_concurrent,
                pages=page_server(),  # now: the scheduler is busy with the report later
            )
            if client is not None:
                flush_worker_logs(client)
    except Exception as exc:
        lost = faults.find_lost(exc)
        if lost is not None:
            raise lost from None
        raise
