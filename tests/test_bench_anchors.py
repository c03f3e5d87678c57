"""The one-machine anchors of ``benchmarks/compare.py``, for real at tiny sizes.

Whole-process rows (the project's ``--search grid`` command and a scikit-learn script
with one ``GridSearchCV(n_jobs=W)`` per model) do the same fits and find the same best
CV scores; Prefect's process pool runs the items; the ``@stock-server`` rows record their
flow runs on a stock ``prefect server start``, not on the project's. Behaviour only, no
speed thresholds.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from prefect_sklearn_dask.benchmarks import search_bench as sb
from prefect_sklearn_dask.benchmarks import stock_server, user_flow, whole
from prefect_sklearn_dask.benchmarks.base import Env, GoalContext, Workload
from prefect_sklearn_dask.benchmarks.catalog import build, measure
from prefect_sklearn_dask.benchmarks.report import summarize
from prefect_sklearn_dask.benchmarks.work import warm_process

SPACE = {"nb": {"var_smoothing": [1e-9, 1e-7]}, "logreg": {"C": [0.1, 1.0]}}


@pytest.fixture(scope="module")
def env(local_cluster):
    from distributed import Client

    with Client(local_cluster, set_as_default=False) as client:
        yield Env(2, local_cluster.scheduler_address, client, quick=True, timeout=300)


def _rows(env: Env, workload: Workload, backends: tuple[str, ...]) -> dict:
    if workload.data is not None:
        env.client.run(warm_process, [workload.data])
    results = {(workload.name, 2, b): [measure(b, workload, env)] for b in backends}
    rows = summarize(results, {workload.name: workload.dataset_bytes})
    return {r["backend"]: r for r in rows}


def test_whole_commands_do_the_same_fits_and_agree_with_the_in_process_search(env):
    backends = (sb.PROJECT, "raw-dask", whole.SEARCH, whole.SKLEARN)
    workload = sb.make(sb.UNEVEN, "synthetic:n_samples=300,n_features=6", SPACE, backends)
    rows = _rows(env, workload, backends)
    assert all(r["error"] == "" for r in rows.values()), rows
    assert {b: r["n_tasks"] for b, r in rows.items()} == dict.fromkeys(backends, 12)
    scores = {b: rows[b]["best_cv_by_model"] for b in (sb.PROJECT, whole.SEARCH, whole.SKLEARN)}
    assert scores[whole.SEARCH] == scores[whole.SKLEARN] == scores[sb.PROJECT], scores

    def row(name: str, backend: str):
        return rows.get(backend) if name == sb.UNEVEN else None

    context = GoalContext(row, "", 2, {}, 2)
    command, default = whole.goals(context)
    assert command.passed is not None and "best CV scores equal" in command.measured
    assert default.measured == "not measured"
    uneven = sb.uneven_goal(row, "")
    assert uneven.passed is not None and "whole flow run" in uneven.measured


def test_the_default_job_whole_command_on_dask_and_on_threads(env):
    workload = build(whole.DEFAULT_JOB)
    rows = _rows(env, workload, (whole.DEFAULT_DASK, whole.DEFAULT_THREADS))
    # make run's job: the 8 default models, a whole process on each runner
    assert {r["n_tasks"] for r in rows.values()} == {len(workload.items)} == {8}, rows
    assert all(r["error"] == "" and r["wall_median_s"] > 0 for r in rows.values())


def test_prefect_process_pool_runs_the_items(env):
    workload = build("seed", quick=True)
    workload = Workload("seed", "2 fits", workload.items[-2:], workload.data)
    rows = _rows(env, workload, ("prefect-processes", "user-flow-processes"))
    assert all(r["error"] == "" and r["n_tasks"] == 2 for r in rows.values()), rows


def test_stock_server_rows_record_on_the_stock_server(env, prefect_api):
    from prefect.client.orchestration import get_client

    env.task_caps = {("tiny", "user-flow-dask"): 10}
    backend = f"user-flow-dask{user_flow.STOCK_SERVER}"
    rows = _rows(env, build("tiny", quick=True), (backend,))
    row = rows[backend]
    assert row["error"] == "" and row["n_tasks"] == 10
    (flow_run_id,) = row["flow_run_ids"]

    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read_from(url: str):
        async with get_client() as client:
            try:
                return await client.read_flow_run(UUID(flow_run_id))
            except ObjectNotFound:
                return None

    def read(url: str):
        with temporary_settings({PREFECT_API_URL: url}):
            return asyncio.run(read_from(url))

    assert stock_server.api_url() != prefect_api
    on_stock = read(stock_server.api_url())
    assert on_stock is not None and on_stock.state.is_completed()
    assert read(prefect_api) is None
