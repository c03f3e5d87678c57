"""FastDaskTaskRunner in a user's own flows, wherever DaskTaskRunner goes.

Prefect pickles the flow (and so the runner it holds) to ship the run context to the
workers: a runner that did not pickle failed every plain ``@flow(task_runner=...)`` at
its first submit. Real LocalCluster, real server; results and records read back.
"""

from __future__ import annotations

import asyncio
import pickle
import uuid
from pathlib import Path

import cloudpickle
import pytest
from prefect import flow, tags, task
from prefect.cache_policies import INPUTS, NO_CACHE
from prefect.runtime import flow_run

from prefect_sklearn_dask import FastDaskTaskRunner
from tests.records import wait_for_task_runs


@pytest.fixture
def runner(local_cluster) -> FastDaskTaskRunner:
    return FastDaskTaskRunner(address=local_cluster.scheduler_address)


@task
def inc(x: int) -> int:
    return x + 1


@task(cache_policy=NO_CACHE)
def write(path: str, text: str) -> str:
    Path(path).write_text(text)
    return text


@task(cache_policy=NO_CACHE)
def read(path: str) -> str:
    return Path(path).read_text()


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


# Pickling ------------------------------------------------------------------------------


def test_a_started_runner_pickles_as_its_settings(runner):
    with runner:
        assert runner.client.scheduler_info()["workers"]
        runner._context.get()  # fill the run-context cache (holds a lock)
        for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
            copy = loads(dumps(runner))
            assert copy == runner
            assert copy._client is None and copy._cluster is None and not copy._started
            assert copy._context is not runner._context
    assert copy.duplicate() == runner


def test_a_flow_holding_a_runner_round_trips(runner):
    @flow(task_runner=runner)
    def holder() -> None: ...

    copy = cloudpickle.loads(cloudpickle.dumps(holder))
    assert isinstance(copy.task_runner, FastDaskTaskRunner)
    assert copy.task_runner == runner


def test_a_runner_given_a_cluster_object_arrives_as_its_address(local_cluster):
    runner = FastDaskTaskRunner(cluster=local_cluster)
    copy = cloudpickle.loads(cloudpickle.dumps(runner))
    assert copy.address == local_cluster.scheduler_address
    assert copy._cluster is None
    # duplicate() (one per flow run) keeps the cluster; stock 0.3.7 drops it
    assert runner.duplicate()._cluster is local_cluster


# Plain user flows ----------------------------------------------------------------------


def test_the_readme_user_flow(local_cluster):
    @flow(task_runner=FastDaskTaskRunner(address=local_cluster.scheduler_address))
    def f():
        return [x.result() for x in inc.map(range(5))]

    assert f() == [1, 2, 3, 4, 5]
    assert f() == [1, 2, 3, 4, 5]  # a second run on the same flow object


def test_with_options_and_a_cluster_object(local_cluster):
    @flow
    def plain() -> list[int]:
        return [x.result() for x in inc.map(range(3))]

    for runner in (
        FastDaskTaskRunner(address=local_cluster.scheduler_address),
        FastDaskTaskRunner(cluster=local_cluster),
    ):
        assert plain.with_options(task_runner=runner)() == [1, 2, 3]


def test_cluster_class_and_kwargs_start_a_cluster_per_run(prefect_api):
    runner = FastDaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": ":0"},
    )

    @flow(task_runner=runner)
    def own_cluster() -> int:
        return inc.submit(41).result()

    assert own_cluster() == 42


def test_futures_as_inputs_wait_for_and_async_tasks(runner, tmp_path):
    path = str(tmp_path / "ordered.txt")

    @flow(task_runner=runner)
    def graph() -> tuple[int, int, str, list[int]]:
        a = inc.submit(1)
        b = inc.submit(a)  # a future as an input
        written = write.submit(path, "first")
        after = read.submit(path, wait_for=[written])  # no data dependency, only order
        doubled = async_double.map([a, b])
        return a.result(), b.result(), after.result(), [d.result() for d in doubled]

    assert graph() == (2, 3, "first", [4, 6])


def test_futures_as_inputs_are_recorded_as_upstream_task_runs(runner):
    """The server's task_inputs link a task run to the one whose future it was given
    (the UI's dependency graph; upstream assets come from the same link)."""

    @flow(task_runner=runner)
    def chained() -> str:
        inc.submit(inc.submit(1)).wait()
        return str(flow_run.id)

    runs = wait_for_task_runs(chained(), 2)
    first, second = sorted(runs, key=lambda r: len(r.task_inputs["x"]))
    assert [link.id for link in second.task_inputs["x"]] == [first.id]


def test_async_flow(runner):
    @flow(task_runner=runner)
    async def async_flow() -> list[int]:
        return [f.result() for f in async_double.map(range(3))]

    assert asyncio.run(async_flow()) == [0, 2, 4]


def test_subflows(runner):
    @flow(task_runner=runner)
    def child(x: int) -> int:
        return inc.submit(x).result()

    @flow(task_runner=runner)
    def parent() -> list[int]:
        return [child(x) for x in range(2)] + [inc.submit(10).result()]

    assert parent() == [1, 2, 11]


@task(retries=2, retry_delay_seconds=0, cache_policy=NO_CACHE)
def flaky(path: str) -> int:
    """Fails until it has been called three times (the count lives in a file)."""
    counter = Path(path)
    calls = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if calls < 3:
        raise RuntimeError(f"attempt {calls} fails")
    return calls


def test_retries_run_on_the_workers(runner, tmp_path):
    @flow(task_runner=runner)
    def retrying() -> tuple[str, int]:
        return str(flow_run.id), flaky.submit(str(tmp_path / "calls")).result()

    flow_run_id, calls = retrying()
    assert calls == 3
    [record] = wait_for_task_runs(flow_run_id, 1)
    assert record.run_count == 3 and record.state.is_completed()


@task(cache_policy=INPUTS, persist_result=True)
def cached(token: str) -> str:
    return f"computed {token} {uuid.uuid4()}"


def test_persisted_results_and_cache_policy_across_runs(runner):
    @flow(task_runner=runner)
    def twice(token: str) -> tuple[str, str]:
        future = cached.submit(token)
        return future.result(), future.state.name

    token = uuid.uuid4().hex
    first, first_state = twice(token)
    second, second_state = twice(token)
    assert (first_state, second_state) == ("Completed", "Cached")
    assert second == first  # read back from the result store the first run wrote


def test_tags_reach_the_task_runs(runner):
    @flow(task_runner=runner)
    def tagged() -> str:
        with tags("outer"):
            futures = inc.with_options(tags={"own"}).map(range(2))
        plain = inc.submit(0)
        [f.result() for f in [*futures, plain]]
        return str(flow_run.id)

    runs = wait_for_task_runs(tagged(), 3)
    assert sorted(sorted(r.tags) for r in runs) == [[], ["outer", "own"], ["outer", "own"]]


# Performance report --------------------------------------------------------------------


def test_a_report_requested_mid_flow_covers_the_work_before_it(local_cluster, tmp_path):
    """``request_performance_report`` lets the scheduler draw the page while the flow goes
    on; the runner's exit writes it. The page covers the tasks before the request, not a
    task submitted after it (stock draws at the exit, and would show both)."""
    report = tmp_path / "report.html"
    runner = FastDaskTaskRunner(
        address=local_cluster.scheduler_address, performance_report_path=str(report)
    )

    @flow(task_runner=runner)
    def user_flow() -> tuple[list[int], bool, int]:
        from prefect.context import FlowRunContext

        values = [f.result() for f in [inc.submit(i) for i in range(6)]]
        requested = FlowRunContext.get().task_runner.request_performance_report()
        written_before_exit = report.exists()
        return values, requested and not written_before_exit, async_double.submit(4).result()

    assert user_flow() == ([1, 2, 3, 4, 5, 6], True, 8)
    html = report.read_text()
    assert "Dask Performance Report" in html and "cdn.bokeh.org" not in html
    assert "inc-" in html and "async_double-" not in html


def test_without_a_report_path_nothing_is_requested(runner):
    with runner:
        assert runner.request_performance_report() is False
