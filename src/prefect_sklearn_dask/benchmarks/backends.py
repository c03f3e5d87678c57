"""The backends compared: each runs a workload's items once and returns a :class:`Measurement`.

``wall`` is the steady state (first submit to last result); starting a cluster or a
runner is measured apart as ``startup``. Prefect backends run as a flow of their own
(``bench-prefect``), so every measured run and its task runs are on the server.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from prefect_sklearn_dask.benchmarks import search_bench, user_flow
from prefect_sklearn_dask.benchmarks.cpu import Processes, per_task_ms
from prefect_sklearn_dask.benchmarks.workloads import (
    Item,
    Workload,
    build,
    run_item,
    sklearn_grid,
    warm_process,
)
from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner
from prefect_sklearn_dask.cluster.local import local_cluster_kwargs
from prefect_sklearn_dask.ml.data import DatasetRef, load_split

PREFECT_BACKENDS = ("prefect-threads", "prefect-dask-own", "prefect-dask-stock", "prefect-dask")
BACKENDS: tuple[str, ...] = (
    "sequential",
    *PREFECT_BACKENDS,
    "raw-dask",
    "joblib",
    "joblib-dask",
    "sklearn-gridsearch",
    "sklearn-gridsearch-dask",
    *user_flow.USER_FLOW_BACKENDS,
    *search_bench.SEARCH_BACKENDS,
)
DESCRIPTIONS = {
    "sequential": "a loop in the flow process (the work itself; per-task times set the bound)",
    "prefect-threads": "Prefect ThreadPoolTaskRunner(max_workers=workers)",
    "prefect-dask-own": "project FastDaskTaskRunner starting its own LocalCluster",
    "prefect-dask-stock": "prefect-dask DaskTaskRunner(address=warm cluster), stock",
    "prefect-dask": "project FastDaskTaskRunner(address=warm cluster)",
    "raw-dask": "distributed client.map(pure=False) on the warm cluster: the practical limit",
    "joblib": "joblib.Parallel(n_jobs=workers), loky processes",
    "joblib-dask": "joblib.Parallel on the dask backend (warm cluster)",
    "sklearn-gridsearch": "GridSearchCV(n_jobs=workers), loky processes",
    "sklearn-gridsearch-dask": "GridSearchCV on joblib's dask backend, scatter=[X, y]",
    **user_flow.DESCRIPTIONS,
    **search_bench.DESCRIPTIONS,
}
# Stock DaskTaskRunner manages ~10 tasks/s: its tasks/s is measured on fewer tasks.
TASK_CAPS = {("tiny", "prefect-dask-stock"): 200, **user_flow.TASK_CAPS}
QUICK_TASK_CAPS = {("tiny", "prefect-dask-stock"): 40, **user_flow.QUICK_TASK_CAPS}


@dataclass
class Env:
    """What a repeat shares: worker count, the warm cluster and a raw client on it."""

    workers: int
    address: str
    client: Any
    quick: bool
    timeout: float
    processes: Processes | None = None


@dataclass
class Measurement:
    backend: str
    n_tasks: int
    wall: float
    startup: float = 0.0
    submit: float | None = None
    bytes_to_workers: int | None = None
    first_loads: int | None = None
    item_seconds: list[float] = field(default_factory=list)
    work_s: float | None = None  # the items' own seconds, summed, as this backend ran them
    cpu_ms: dict[str, float | None] | None = None  # CPU ms per task by process group
    flow_run_id: str | None = None
    search: dict[str, Any] | None = None  # train-flow rows: best CV scores, fits by model


@dataclass(frozen=True)
class Skipped:
    """An optional backend that cannot run here, and why (a row with the reason)."""

    reason: str


def skip_reason(backend: str) -> str | None:
    """Why ``backend`` cannot run in this environment (None: it can)."""
    return search_bench.skip_reason(backend)


def applies(backend: str, workload: Workload) -> bool:
    """GridSearchCV backends only for the grid; joblib's own where the items are its unit.

    A workload that names its backends (the search group) runs exactly those.
    """
    if workload.backends is not None:
        return backend in workload.backends
    if backend in search_bench.SEARCH_BACKENDS:
        return False
    is_grid = workload.name == "grid"
    if backend in user_flow.USER_FLOW_BACKENDS:
        return workload.name in user_flow.WORKLOADS
    if backend.startswith("sklearn-gridsearch"):
        return is_grid
    if backend.startswith("joblib"):
        return not is_grid
    return True


def items_for(backend: str, workload: Workload, quick: bool = False) -> tuple[Item, ...]:
    cap = (QUICK_TASK_CAPS if quick else TASK_CAPS).get((workload.name, backend))
    return workload.items[:cap] if cap else workload.items


def scheduler_bytes(dask_scheduler: Any) -> int:
    """Bytes the scheduler has sent its workers (task specs included): runs on the scheduler."""
    return sum(stream.byte_count for stream in dask_scheduler.stream_comms.values())


def _from_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What the items report themselves: dataset loads in the run and the work as run."""
    return {
        "first_loads": sum(Counter(r["pid"] for r in results if r["first_load"]).values()),
        "work_s": sum(r["seconds"] for r in results),
    }


# Prefect -------------------------------------------------------------------------------


@task(
    name="bench-item",
    task_run_name="{item.label}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def bench_item(item: Item, data: DatasetRef | None, seed: int = 0) -> dict[str, Any]:
    """The Prefect task every Prefect backend runs: one work item."""
    return run_item(item, data, seed)


def make_runner(backend: str, workers: int, address: str | None):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    if backend == "prefect-threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if backend == "prefect-dask-own":
        return FastDaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs=local_cluster_kwargs(workers, dashboard_port=0),
        )
    if backend == "prefect-dask-stock":
        return DaskTaskRunner(address=address)
    if backend == "prefect-dask":
        return FastDaskTaskRunner(address=address)
    raise ValueError(f"not a Prefect backend: {backend!r}")


@flow(name="bench-prefect", flow_run_name="{workload}-{backend}-w{workers}")
def prefect_backend_flow(
    workload: str, quick: bool, backend: str, workers: int, address: str | None, timeout: float
) -> dict[str, Any]:
    """One measured run of a Prefect task runner on one workload."""
    wl = build(workload, quick)
    items = items_for(backend, wl, quick)
    started = time.perf_counter()
    with make_runner(backend, workers, address) as runner:
        client = getattr(runner, "client", None)  # a Dask runner connects or starts here
        if backend == "prefect-dask-own" and wl.data is not None:
            client.run(warm_process, [wl.data])  # its fresh workers load the data once
        if isinstance(runner, FastDaskTaskRunner):
            runner.warm_workers()  # as train-flow does: per-run worker set-up is start-up
        before = client.run_on_scheduler(scheduler_bytes) if client else None
        ready = time.perf_counter()
        futures = [
            runner.submit(bench_item, {"item": item, "data": wl.data, "seed": wl.seed})
            for item in items
        ]
        submitted = time.perf_counter()
        deadline = ready + timeout
        results = [f.result(timeout=max(1.0, deadline - time.perf_counter())) for f in futures]
        done = time.perf_counter()
        after = client.run_on_scheduler(scheduler_bytes) if client else None
    return {
        "n_tasks": len(items),
        "wall": done - ready,
        "startup": ready - started,
        "submit": submitted - ready,
        "bytes_to_workers": None if before is None else after - before,
        **_from_results(results),
        "flow_run_id": str(flow_run.id),
    }


def run_prefect(backend: str, workload: Workload, env: Env) -> Measurement:
    out = prefect_backend_flow(
        workload.name, env.quick, backend, env.workers, env.address, env.timeout
    )
    return Measurement(backend=backend, **out)


# Plain Python, Dask, joblib ------------------------------------------------------------


def run_sequential(backend: str, workload: Workload, env: Env) -> Measurement:
    started = time.perf_counter()
    results = [run_item(item, workload.data, workload.seed) for item in workload.items]
    return Measurement(
        backend,
        len(results),
        time.perf_counter() - started,
        item_seconds=[r["seconds"] for r in results],
        **_from_results(results),
    )


def run_raw_dask(backend: str, workload: Workload, env: Env) -> Measurement:
    from distributed import wait

    client = env.client
    before = client.run_on_scheduler(scheduler_bytes)
    started = time.perf_counter()
    futures = client.map(
        run_item, workload.items, data=workload.data, seed=workload.seed, pure=False
    )
    submitted = time.perf_counter()
    with client.as_current():
        wait(futures, timeout=env.timeout)
    results = client.gather(futures)
    done = time.perf_counter()
    after = client.run_on_scheduler(scheduler_bytes)
    del futures
    return Measurement(
        backend,
        len(results),
        done - started,
        submit=submitted - started,
        bytes_to_workers=after - before,
        **_from_results(results),
    )


def _joblib(workload: Workload, workers: int, backend: str, **backend_kwargs: Any) -> list:
    from joblib import Parallel, delayed, parallel_backend

    with parallel_backend(backend, n_jobs=workers, **backend_kwargs):
        return Parallel()(
            delayed(run_item)(i, workload.data, workload.seed) for i in workload.items
        )


def run_joblib(backend: str, workload: Workload, env: Env) -> Measurement:
    from joblib import Parallel, delayed

    warm_started = time.perf_counter()
    refs = [workload.data] if workload.data else []
    Parallel(n_jobs=env.workers)(delayed(warm_process)(refs) for _ in range(env.workers * 2))
    started = time.perf_counter()
    if backend == "joblib":
        results = _joblib(workload, env.workers, "loky")
    else:
        with env.client.as_current():
            results = _joblib(workload, env.workers, "dask")
    done = time.perf_counter()
    return Measurement(
        backend,
        len(results),
        done - started,
        startup=started - warm_started,
        **_from_results(results),
    )


def run_gridsearch(backend: str, workload: Workload, env: Env) -> Measurement:
    from joblib import parallel_backend

    search = sklearn_grid(workload)
    split = load_split(workload.data)
    X, y = split.X_train, split.y_train
    on_dask = backend != "sklearn-gridsearch"
    before = env.client.run_on_scheduler(scheduler_bytes) if on_dask else None
    started = time.perf_counter()
    if not on_dask:
        search.set_params(n_jobs=env.workers).fit(X, y)
    else:
        with env.client.as_current(), parallel_backend("dask", scatter=[X, y]):
            search.set_params(n_jobs=-1).fit(X, y)
    done = time.perf_counter()
    sent = env.client.run_on_scheduler(scheduler_bytes) - before if on_dask else None
    return Measurement(
        backend,
        len(search.cv_results_["params"]) * search.n_splits_,
        done - started,
        bytes_to_workers=sent,
    )


RUNNERS: dict[str, Callable[[str, Workload, Env], Measurement]] = {
    "sequential": run_sequential,
    **dict.fromkeys(PREFECT_BACKENDS, run_prefect),
    "raw-dask": run_raw_dask,
    "joblib": run_joblib,
    "joblib-dask": run_joblib,
    "sklearn-gridsearch": run_gridsearch,
    "sklearn-gridsearch-dask": run_gridsearch,
    **dict.fromkeys(user_flow.USER_FLOW_BACKENDS, user_flow.run_user_flow),
    search_bench.PROJECT: search_bench.run_train_flow,
    search_bench.HALVING: search_bench.run_train_flow,
    search_bench.DASK_ML: search_bench.run_dask_ml,
}
# Backends whose runs the Prefect server records (its CPU is read once it is quiet).
SERVER_RECORDED = (
    *PREFECT_BACKENDS,
    *user_flow.USER_FLOW_BACKENDS,
    search_bench.PROJECT,
    search_bench.HALVING,
)


# Backends whose work runs in processes the suite cannot see (its own cluster, loky).
CPU_UNACCOUNTED = ("prefect-dask-own", "joblib", "sklearn-gridsearch")


def measure(backend: str, workload: Workload, env: Env) -> Measurement:
    """One run of ``backend``, with the CPU each process group spent on it per task."""
    processes = None if backend in CPU_UNACCOUNTED else env.processes
    before = processes.snapshot() if processes else None
    measured = RUNNERS[backend](backend, workload, env)
    if processes:
        if backend in SERVER_RECORDED:
            processes.wait_server_quiet()  # it records the task runs after the flow returns
        measured.cpu_ms = per_task_ms(before, processes.snapshot(), measured.n_tasks)
    return measured
