"""The core backends: each runs a workload's items once and returns a :class:`Measurement`.

``wall`` is the steady state (first submit to last result); starting a cluster or a
runner is measured apart as ``startup``. Prefect backends run as a flow of their own
(``bench-prefect``), so every measured run and its task runs are on the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from prefect_sklearn_dask.benchmarks.base import (
    Env,
    Measurement,
    Workload,
    from_results,
    scheduler_bytes,
)
from prefect_sklearn_dask.benchmarks.work import bench_item, run_item, warm_process
from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner
from prefect_sklearn_dask.cluster.local import local_cluster_kwargs
from prefect_sklearn_dask.ml.data import DatasetRef, load_split

PREFECT_BACKENDS = (
    "prefect-threads",
    "prefect-processes",
    "prefect-dask-own",
    "prefect-dask-stock",
    "prefect-dask",
)
DESCRIPTIONS = {
    "sequential": "a loop in the flow process (the work itself; per-task times set the bound)",
    "prefect-threads": "Prefect ThreadPoolTaskRunner(max_workers=workers)",
    "prefect-processes": "Prefect ProcessPoolTaskRunner(max_workers=workers), fresh processes",
    "prefect-dask-own": "project FastDaskTaskRunner starting its own LocalCluster",
    "prefect-dask-stock": "prefect-dask DaskTaskRunner(address=warm cluster), stock",
    "prefect-dask": "project FastDaskTaskRunner(address=warm cluster)",
    "raw-dask": "distributed client.map(pure=False) on the warm cluster: the practical limit",
    "joblib": "joblib.Parallel(n_jobs=workers), loky processes",
    "joblib-dask": "joblib.Parallel on the dask backend (warm cluster)",
    "sklearn-gridsearch": "GridSearchCV(n_jobs=workers), loky processes",
    "sklearn-gridsearch-dask": "GridSearchCV on joblib's dask backend, scatter=[X, y]",
}


# Prefect -------------------------------------------------------------------------------


def make_runner(backend: str, workers: int, address: str | None):
    """The task runner a Prefect backend names (its flow is decorated with it)."""
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    if backend == "prefect-threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if backend == "prefect-processes":
        return ProcessPoolTaskRunner(max_workers=workers)
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
    workload: str,
    items: tuple,
    data: Any,
    seed: int,
    backend: str,
    workers: int,
    address: str | None,
    timeout: float,
) -> dict[str, Any]:
    """One measured run of a Prefect task runner on one workload's items."""
    started = time.perf_counter()
    with make_runner(backend, workers, address) as runner:
        client = getattr(runner, "client", None)  # a Dask runner connects or starts here
        if backend == "prefect-dask-own" and data is not None:
            client.run(warm_process, [data])  # its fresh workers load the data once
        if isinstance(runner, FastDaskTaskRunner):
            runner.warm_workers()  # as train-flow does: per-run worker set-up is start-up
        before = client.run_on_scheduler(scheduler_bytes) if client else None
        ready = time.perf_counter()
        futures = [
            runner.submit(bench_item, {"item": item, "data": data, "seed": seed}) for item in items
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
        **from_results(results),
        "flow_run_id": str(flow_run.id),
    }


def run_prefect(backend: str, workload: Workload, env: Env) -> Measurement:
    items = env.items_for(backend, workload)
    out = prefect_backend_flow(
        workload.name,
        items,
        workload.data,
        workload.seed,
        backend,
        env.workers,
        env.address,
        env.timeout,
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
        **from_results(results),
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
        **from_results(results),
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
    refs: list[DatasetRef] = [workload.data] if workload.data else []
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
        **from_results(results),
    )


def run_gridsearch(backend: str, workload: Workload, env: Env) -> Measurement:
    from joblib import parallel_backend

    search = workload.sklearn(workload)
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
}


def run_search_flow(
    backend: str, env: Env, prefix: str, **params: Any
) -> tuple[Measurement, list[dict[str, Any]]]:
    """One whole ``train-flow`` search run on the warm cluster (no fit cache, no report):
    the row's measurement (fits, wall, bytes sent to the workers, best CV and fits per
    model, the searches' own seconds) and the run's successful rows, for extra numbers."""
    import tempfile

    from prefect_sklearn_dask.flow.train_flow import train_flow

    before = env.client.run_on_scheduler(scheduler_bytes)
    with tempfile.TemporaryDirectory(prefix=prefix) as storage:
        started = time.perf_counter()
        summary = train_flow(
            runner="dask",
            address=env.address,
            storage=storage,
            cache=False,
            performance_report=False,
            **params,
        )
        wall = time.perf_counter() - started
    sent = env.client.run_on_scheduler(scheduler_bytes) - before
    rows = [r for r in summary["rows"] if r.get("status") == "ok"]
    search = {
        "best_cv": {r["model"]: r["search"]["cv_mean"] for r in rows},
        "fits_by_model": {r["model"]: r["search"]["fits"] for r in rows},
        # from the first search's start to the last one's result (refits included): the
        # flow run's fixed cost (setup, artifacts, chart, model store) left out
        "searches_s": summary["timings"]["train_seconds"],
    }
    measured = Measurement(
        backend,
        summary["cache"]["fits"],
        wall,
        bytes_to_workers=sent,
        flow_run_id=summary["flow_run_id"],
        search=search,
    )
    return measured, rows
