"""A ``DaskTaskRunner`` whose per-task cost does not grow with Prefect's settings tree.

Stock prefect-dask 0.3.7 pays, for every task, work that is identical for the whole run:

* flow side, ~45 ms per ``submit``: ``prefect.context.serialize_context`` dumps the whole
  settings tree through pydantic (~80%), then Dask tokenizes it (``pure=True``, ~10%);
* worker side, ~70 ms per task: ``hydrated_context`` rebuilds ``SettingsContext`` from that
  dump (pydantic-settings re-reads environment, .env and TOML for every settings group)
  and Prefect opens two fresh API clients (one SSL context each).

This runner keeps everything else stock: each task still runs through Prefect's own task
engine on the worker and records its task run, states and logs on the server. It only

* serializes and pickles the run's context once per run (again when a context object
  changes: a new flow run, parent task, tags or settings) and ships it as opaque bytes;
* on each worker, unpickles it and validates its ``SettingsContext`` once per run, and
  keeps one open API client per worker thread;
* builds the small per-task asset context (task + inputs) fresh for every task;
* can warm every worker (context and API client) before the first task
  (:meth:`FastDaskTaskRunner.warm_workers`), so that per-run cost is start-up;
* submits with ``pure=False`` (every task run is unique) under the key
  ``<task name>-<task run id>``, with a Dask priority that falls with submission order,
  so the order the flow submits in (longest fits first) is the order workers start them.

    from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner
    with FastDaskTaskRunner(address="tcp://127.0.0.1:8786") as runner:
        future = runner.submit(my_task, {"x": 1})
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import threading
from collections.abc import Iterable
from typing import Any
from uuid import uuid4

import distributed
from distributed.client import FuturesCancelledError
from prefect.client.schemas.objects import RunInput
from prefect.context import (
    AssetContext,
    EngineContext,
    SettingsContext,
    TagsContext,
    TaskRunContext,
    _deployment_id,
    _deployment_parameters,
    serialize_context,
)
from prefect.tasks import Task
from prefect.utilities.engine import collect_task_run_inputs_sync
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

# Worker side ---------------------------------------------------------------------------

_RUN_CONTEXTS: dict[str, tuple[dict[str, Any], Any]] = {}
_RUN_CONTEXTS_KEPT = 4
_RUN_CONTEXTS_LOCK = threading.Lock()
_THREAD = threading.local()


def _run_context(key: str, blob: bytes) -> tuple[dict[str, Any], Any]:
    """The run's context and its ``SettingsContext``, unpickled and validated once per process.

    Rebuilding ``SettingsContext`` from its dump re-runs pydantic-settings over every
    settings group (environment, .env and TOML sources): ~70 ms per task on stock
    prefect-dask, identical for every task of the run.
    """
    with _RUN_CONTEXTS_LOCK:
        if key not in _RUN_CONTEXTS:
            import cloudpickle

            context = cloudpickle.loads(blob)
            settings = context.pop("settings_context", None)
            while len(_RUN_CONTEXTS) >= _RUN_CONTEXTS_KEPT:
                _RUN_CONTEXTS.pop(next(iter(_RUN_CONTEXTS)))
            _RUN_CONTEXTS[key] = (context, SettingsContext(**settings) if settings else None)
        return _RUN_CONTEXTS[key]


def _client_context(key: str) -> Any:
    """This thread's open ``SyncClientContext`` for the run's settings, made once.

    Prefect otherwise builds two API clients per task (one SSL context each, ~20 ms);
    a client per worker thread also keeps its HTTP connection alive between tasks.
    """
    from prefect.context import SyncClientContext

    clients = getattr(_THREAD, "clients", None)
    if clients is None:
        clients = _THREAD.clients = {}
    if key not in clients:
        while len(clients) >= _RUN_CONTEXTS_KEPT:  # an old run's client: close it
            clients.pop(next(iter(clients))).client.__exit__(None, None, None)
        context = SyncClientContext()
        context.client.__enter__()
        context.client.raise_for_api_version_mismatch_once()
        clients[key] = context
    return clients[key]


def _settings_scope(settings: Any) -> Any:
    return settings.model_copy() if settings is not None else contextlib.nullcontext()


def warm_worker(context_key: str, context_blob: bytes) -> None:
    """The run's context and this thread's API client, made before the run's first task."""
    import prefect.task_engine  # noqa: F401 - the engine's imports, once per process

    _, settings = _run_context(context_key, context_blob)
    with _settings_scope(settings):
        _client_context(context_key)


def run_prefect_task(
    task: Task, context_key: str, context_blob: bytes, asset_context: dict, **run_task_kwargs: Any
) -> Any:
    """Run ``task`` through Prefect's own task engine inside the run's cached context."""
    from prefect.context import SyncClientContext
    from prefect.task_engine import run_task_async, run_task_sync

    base, settings = _run_context(context_key, context_blob)
    context = {**base, "asset_context": asset_context}
    with contextlib.ExitStack() as stack:
        stack.enter_context(_settings_scope(settings))
        if not task.isasync:
            # Set (not enter) the thread's open client context: the engine's
            # get_or_create() and hydrated_context() then reuse its client.
            token = SyncClientContext.__var__.set(_client_context(context_key))
            stack.callback(SyncClientContext.__var__.reset, token)
            return run_task_sync(task=task, context=context, **run_task_kwargs)
        return asyncio.run(run_task_async(task=task, context=context, **run_task_kwargs))


# Flow side -----------------------------------------------------------------------------

# What a pickled FastDaskTaskRunner leaves behind: everything made by starting it. The
# settings (address, cluster class and kwargs, ...) travel, including any a later
# prefect-dask adds.
_RUNTIME = (
    "_client",
    "_cluster",
    "_connect_to",
    "_exit_stack",
    "_started",
    "_context",
    "_order",
    "_report",
)


class PerformanceReport(distributed.performance_report):
    """``distributed.performance_report`` whose page can be asked for before the block ends.

    The scheduler draws the page with bokeh when asked: 1.5 s of its CPU after a 160-fit
    search (cProfile of ``Scheduler.performance_report``), which stock spends at the
    block's exit, after the flow's own closing work. :meth:`request` starts it now, on
    the client's event loop; the exit then waits for the page and writes it. Without a
    request, the exit does what stock does.
    """

    def __init__(self, filename: str, mode: str = "inline") -> None:
        super().__init__(filename, mode=mode)
        self._page: concurrent.futures.Future | None = None

    def request(self, client: distributed.Client, code: str | None = None) -> None:
        """Have the scheduler draw the page now (the work since the block began).

        ``code``: what the page shows as the calling code. Without it, the caller's source
        as stock finds it (``inspect.getsource``, whose module lookup took 0.15 s of the
        flow's closing work with this many modules loaded).
        """
        if self._page is not None:
            return
        if code is None:
            frames = client._get_computation_code(self._stacklevel + 1, nframes=1)
            code = frames[0].code if frames else "<Code not available>"
        page = client.scheduler.performance_report(
            start=self.start, last_count=self.last_count, code=code, mode=self.mode
        )
        self._page = asyncio.run_coroutine_threadsafe(page, client.loop.asyncio_loop)

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if self._page is None:
            return super().__exit__(exc_type, exc_value, traceback)
        import fsspec

        data = self._page.result()
        with fsspec.open(self.filename, mode="w", compression="infer", **self.storage_options) as f:
            f.write(data)


class _ContextCache:
    """The run context, serialized and pickled only when a context object changes identity."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: tuple[Any, ...] | None = None
        self._packed: tuple[str, bytes] = ("", b"")

    @staticmethod
    def _current() -> tuple[Any, ...]:
        # TagsContext.get() builds a fresh empty context when none is set, so tags are
        # compared by value; the other contexts are the same objects for a whole run.
        return (
            EngineContext.get(),
            TaskRunContext.get(),
            SettingsContext.get(),
            _deployment_parameters.get(),
            frozenset(TagsContext.get().current_tags),
            _deployment_id.get(),
        )

    def get(self) -> tuple[str, bytes]:
        """``(key, pickled context)``; the key names the context in worker caches."""
        current = self._current()
        with self._lock:
            same = (
                self._sources is not None
                and all(a is b for a, b in zip(current[:4], self._sources[:4], strict=True))
                and current[4:] == self._sources[4:]
            )
            if not same:
                import cloudpickle

                context = serialize_context()
                context.pop("asset_context", None)
                # Holding the objects keeps their ids from being reused while cached.
                self._packed = (uuid4().hex, cloudpickle.dumps(context))
                self._sources = current
            return self._packed


class FastDaskTaskRunner(DaskTaskRunner):
    """``DaskTaskRunner`` with the run context serialized once per run and ``pure=False``.

    Same arguments as ``DaskTaskRunner``. A pickled runner keeps only its settings:
    Prefect pickles the flow that holds it (once per run here, with every task in stock
    prefect-dask), and a lock, a client or a cluster cannot travel. A runner given a
    running ``cluster`` object arrives as a runner for that cluster's scheduler address.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._given_cluster = self._cluster  # a running cluster object passed as `cluster=`
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """Nothing started: no client, no cluster of its own, empty caches."""
        self._client = None
        self._cluster = self._given_cluster
        self._exit_stack = contextlib.ExitStack()
        self._started = False
        self._context = _ContextCache()
        self._order = itertools.count()
        self._report: PerformanceReport | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = {name: value for name, value in self.__dict__.items() if name not in _RUNTIME}
        if self._given_cluster is not None:  # a live cluster does not pickle; its address does
            state["address"] = self._given_cluster.scheduler_address
        state["_given_cluster"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

    def duplicate(self) -> FastDaskTaskRunner:
        """A fresh runner with the same settings (Prefect runs each flow run on one).

        Unlike stock 0.3.7, a runner given a ``cluster`` object keeps it: stock drops it
        and, unless a default Dask client is set, starts a new ``LocalCluster`` for every
        flow run.
        """
        if self._given_cluster is not None:
            return type(self)(
                cluster=self._given_cluster,
                adapt_kwargs=self.adapt_kwargs,
                client_kwargs=self.client_kwargs,
                performance_report_path=self.performance_report_path,
            )
        return super().duplicate()

    @property
    def client(self) -> Any:
        """Started as stock does, but with the performance report's BokehJS inline.

        Stock prefect-dask opens ``distributed.performance_report(path)`` with the client,
        and that page loads BokehJS from cdn.bokeh.org: blank in a browser without
        internet, as on most clusters. ``mode="inline"`` embeds it (~1 MB more a report).
        """
        if self._client:
            return self._client
        path, self.performance_report_path = self.performance_report_path, None
        try:
            client = DaskTaskRunner.client.fget(self)
        finally:
            self.performance_report_path = path
        if path:
            # current, so that distributed.get_client() in the report finds this client
            self._exit_stack.enter_context(distributed.Client.as_current(client))
            self._report = PerformanceReport(path)
            self._exit_stack.enter_context(self._report)
        return client

    def request_performance_report(self, code: str | None = None) -> bool:
        """Start drawing the run's performance report now, for the work submitted so far,
        while the flow goes on with its own closing work; the runner's exit writes it.
        ``code`` is shown as the calling code (default: the caller's source). False when
        the runner keeps no report."""
        if self._report is None:
            return False
        self._report.request(self.client, code)
        return True

    def warm_workers(self, timeout: float = 120.0) -> int:
        """Unpack the run's context and open an API client on every worker now.

        Otherwise each worker does it inside its first task of the run (~0.1-0.2 s:
        settings validation, an SSL context, the API version check), which lands on the
        run's critical path. Call it inside the flow run, once the runner has started;
        workers that join later do it lazily. Returns how many workers were warmed.
        """
        key, blob = self._context.get()
        workers = list(self.client.scheduler_info()["workers"])
        futures = [
            distributed.Client.submit(
                self.client,
                warm_worker,
                key,
                blob,
                key=f"prefect-warm-{key}-{i}",
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
            for i, worker in enumerate(workers)
        ]
        # A busy or dying worker warms up in its first task instead; cancelled futures
        # are looked at one by one below.
        with contextlib.suppress(TimeoutError, FuturesCancelledError), self.client.as_current():
            distributed.wait(futures, timeout=timeout)
        for future in futures:
            if future.cancelled():  # the scheduler went away: say so now, not at submit
                future.result()
        return len(workers)

    def submit(
        self,
        task: Task,
        parameters: dict[str, Any],
        wait_for: Iterable[PrefectDaskFuture[Any]] | None = None,
        dependencies: dict[str, set[RunInput]] | None = None,
    ) -> PrefectDaskFuture[Any]:
        if not self._started:
            raise RuntimeError("The task runner must be started before submitting work.")
        parameters = self._optimize_futures(parameters)
        wait_for = self._optimize_futures(wait_for) if wait_for else None
        task_run_id = uuid4()
        inputs = {
            name: collect_task_run_inputs_sync(value, future_cls=distributed.Future)
            for name, value in parameters.items()
        }
        if dependencies:
            inputs = {
                name: found.union(dependencies.get(name, set())) for name, found in inputs.items()
            }
        context_key, context_blob = self._context.get()
        asset_context = AssetContext.from_task_and_inputs(
            task=task, task_run_id=task_run_id, task_inputs=inputs, copy_to_child_ctx=True
        ).serialize()
        # distributed.Client.submit, not PrefectDaskClient.submit: that one would
        # serialize the whole context again for this task.
        future = distributed.Client.submit(
            self.client,
            run_prefect_task,
            task,
            context_key,
            context_blob,
            asset_context,
            key=f"{task.name}-{task_run_id}",
            pure=False,
            priority=-next(self._order),
            task_run_id=task_run_id,
            parameters=parameters,
            wait_for=wait_for,
            dependencies=inputs,
            return_type="state",
        )
        # As PrefectDaskClient does: a task given this future as input records the
        # link (its task_inputs, upstream assets) from this attribute.
        future.task_run_id = task_run_id
        return PrefectDaskFuture(wrapped_future=future, task_run_id=task_run_id)


__all__ = ["FastDaskTaskRunner", "run_prefect_task", "warm_worker"]
