"""The fast Dask runner keeps Prefect's task-level records: read them back from the API."""

from __future__ import annotations

from prefect import flow, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner
from prefect_sklearn_dask.bridge.runners import build_task_runner
from tests.records import wait_for_task_runs

N_TASKS = 12


@task(name="square", task_run_name="square-{x}", cache_policy=NO_CACHE, persist_result=False)
def square(x: int) -> int:
    return x * x


@flow(name="fast-dask-probe")
def probe(address: str) -> tuple[str, list[int]]:
    with FastDaskTaskRunner(address=address) as runner, tags("probe"):
        futures = [runner.submit(square, {"x": x}) for x in range(N_TASKS)]
        # A task that depends on another: futures still resolve across the fast path.
        total = runner.submit(square, {"x": futures[3]})
        results = [f.result(timeout=60) for f in futures] + [total.result(timeout=60)]
    return str(flow_run.id), results


def test_results_and_task_runs_recorded_on_the_server(local_cluster):
    flow_run_id, results = probe(local_cluster.scheduler_address)
    assert results == [x * x for x in range(N_TASKS)] + [81]
    runs = wait_for_task_runs(flow_run_id, N_TASKS + 1)
    assert len(runs) == N_TASKS + 1
    assert all(r.state.is_completed() for r in runs)
    assert {r.name for r in runs} >= {f"square-{x}" for x in range(N_TASKS)}
    assert all("probe" in r.tags for r in runs)


def test_runners_builds_fast_runner_unless_stock_asked():
    from prefect_dask import DaskTaskRunner

    assert isinstance(build_task_runner("dask", address="127.0.0.1:1"), FastDaskTaskRunner)
    stock = build_task_runner("dask", address="127.0.0.1:1", stock_dask=True)
    assert type(stock) is DaskTaskRunner


def _holds_context(key: str) -> bool:
    from prefect_sklearn_dask.bridge import fast_dask

    return key in fast_dask._RUN_CONTEXTS


@flow(name="fast-dask-warm")
def warmed_probe(address: str) -> tuple[int, dict[str, bool], list[int]]:
    with FastDaskTaskRunner(address=address) as runner:
        warmed = runner.warm_workers()
        key, _ = runner._context.get()
        held = runner.client.run(_holds_context, key)
        futures = [runner.submit(square, {"x": x}) for x in range(4)]
        return warmed, held, [f.result(timeout=60) for f in futures]


def test_warm_workers_unpacks_the_run_context_on_every_worker_first(local_cluster):
    warmed, held, results = warmed_probe(local_cluster.scheduler_address)
    assert warmed == 2
    assert list(held.values()) == [True, True]
    assert results == [0, 1, 4, 9]
