"""``user-flow-*`` rows: what a plain ``@flow(task_runner=...)`` costs a user, whole.

The steady-state rows time first submit to last result inside a running flow. A user
calls a flow and waits for it to return, so these rows time exactly that, on the same
warm cluster and workload: flow-run creation, the runner's start (a client connects),
``.map`` over the items, the results, the runner's exit and the flow run's final state.
Their ratio to raw Dask is the per-flow-run cost on top of the per-task cost.

Each row's flow is called from the suite's flow, so it runs as a subflow (one more
task run recorded for the parent: a few ms).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prefect import flow, unmapped
from prefect.runtime import flow_run

from prefect_sklearn_dask.benchmarks import stock_server
from prefect_sklearn_dask.benchmarks.backends import make_runner
from prefect_sklearn_dask.benchmarks.base import (
    Env,
    Goal,
    GoalContext,
    Measurement,
    Rows,
    Workload,
    from_results,
)
from prefect_sklearn_dask.benchmarks.work import bench_item

# user-flow backend -> the Prefect backend whose task runner its flow is decorated with
USER_FLOW_BACKENDS: dict[str, str] = {
    "user-flow-threads": "prefect-threads",
    "user-flow-processes": "prefect-processes",
    "user-flow-dask-stock": "prefect-dask-stock",
    "user-flow-dask": "prefect-dask",
}
DESCRIPTIONS = {
    backend: f"a plain @flow with the {runner} runner, timed from call to return"
    for backend, runner in USER_FLOW_BACKENDS.items()
}
# The same user flows against a stock `prefect server start` (default settings), as a
# user of the drop-in runner runs them: tiny only.
STOCK_SERVER = "@stock-server"
ON_STOCK_SERVER = tuple(
    f"{b}{STOCK_SERVER}" for b in ("user-flow-threads", "user-flow-dask-stock", "user-flow-dask")
)
DESCRIPTIONS |= {
    b: f"{b.removesuffix(STOCK_SERVER)} against a stock `prefect server start` (default "
    "settings, its own PREFECT_HOME), not the project's server"
    for b in ON_STOCK_SERVER
}
WORKLOADS = ("seed", "tiny")
# The user flow: 200 near-empty tasks (quick: 40).
TASK_CAPS = {("tiny", backend): 200 for backend in (*USER_FLOW_BACKENDS, *ON_STOCK_SERVER)}
QUICK_TASK_CAPS = {("tiny", backend): 40 for backend in USER_FLOW_BACKENDS}
GOAL_RATIO = 1.10
GOAL_TINY_TPS = 100.0
PROJECT_BACKEND = "user-flow-dask"


@flow(name="user-flow")
def user_flow(items: tuple, data: Any, seed: int, timeout: float) -> tuple[str, list[dict]]:
    """What a user writes: map a task over the items, return the results."""
    futures = bench_item.map(items, data=unmapped(data), seed=unmapped(seed))
    return str(flow_run.id), [f.result(timeout=timeout) for f in futures]


def run_user_flow(backend: str, workload: Workload, env: Env) -> Measurement:
    runner = make_runner(USER_FLOW_BACKENDS[backend], env.workers, env.address)
    decorated = user_flow.with_options(task_runner=runner)  # as @flow(task_runner=...) would
    items = env.items_for(backend, workload)
    started = time.perf_counter()
    flow_run_id, results = decorated(items, workload.data, workload.seed, env.timeout)
    wall = time.perf_counter() - started
    return Measurement(backend, len(items), wall, **from_results(results), flow_run_id=flow_run_id)


def run_on_stock_server(backend: str, workload: Workload, env: Env) -> Measurement:
    """The user flow as a top-level flow run on a stock server (a thread of its own: no
    parent flow run, settings that name only that server)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = stock_server.api_url()
    found: dict[str, Any] = {}

    def call() -> None:
        try:
            with temporary_settings({PREFECT_API_URL: url}):
                found["m"] = run_user_flow(backend.removesuffix(STOCK_SERVER), workload, env)
        except BaseException as exc:  # re-raised in the suite's thread
            found["error"] = exc

    thread = threading.Thread(target=call, name=f"bench-{backend}")
    thread.start()
    thread.join()
    if "error" in found:
        raise found["error"]
    found["m"].backend = backend
    return found["m"]


def goals(ctx: GoalContext) -> list[Goal]:
    """The user-flow goals, on the project's runner; ``ctx.row(workload, backend)``."""
    row, at = ctx.row, ctx.at

    def others(workload: str, key: str) -> str:
        found = {
            b: (row(workload, b) or {}).get(key)
            for b in ("user-flow-dask-stock", "user-flow-threads", "user-flow-processes")
        }
        return ", ".join(f"{b.removeprefix('user-flow-')} {v}" for b, v in found.items())

    seed, tiny = row("seed", PROJECT_BACKEND), row("tiny", PROJECT_BACKEND)
    ratio = seed.get("ratio_to_raw_dask") if seed else None
    tps = tiny.get("tasks_per_s") if tiny else None
    return [
        Goal(
            f"user-flow seed: a plain @flow, call to return, vs raw Dask{at}",
            f"<= {GOAL_RATIO:.2f}x",
            "not measured"
            if ratio is None
            else f"{ratio:.2f}x (x raw: {others('seed', 'ratio_to_raw_dask')})",
            None if ratio is None else ratio <= GOAL_RATIO,
        ),
        Goal(
            f"user-flow tiny: tasks/s of a plain @flow, call to return{at}",
            f">= {GOAL_TINY_TPS:.0f}",
            "not measured"
            if tps is None
            else f"{tps:.0f} tasks/s on {tiny['n_tasks']} tasks "
            f"(tasks/s: {others('tiny', 'tasks_per_s')}, raw Dask "
            f"{(row('tiny', 'raw-dask') or {}).get('tasks_per_s')}; on a stock server: "
            + ", ".join(
                f"{b.removeprefix('user-flow-').removesuffix(STOCK_SERVER)} "
                f"{(row('tiny', b) or {}).get('tasks_per_s')}"
                for b in ON_STOCK_SERVER
            )
            + ")",
            None if tps is None else tps >= GOAL_TINY_TPS,
        ),
    ]


ROWS = Rows(
    name="user-flow",
    backends={
        **dict.fromkeys(USER_FLOW_BACKENDS, run_user_flow),
        **dict.fromkeys(ON_STOCK_SERVER, run_on_stock_server),
    },
    descriptions=DESCRIPTIONS,
    applies=lambda backend, workload: (
        workload.name == "tiny" if backend in ON_STOCK_SERVER else workload.name in WORKLOADS
    ),
    goals=goals,
    task_caps=TASK_CAPS,
    quick_task_caps=QUICK_TASK_CAPS,
    # whole-flow rows on --quick: only the project's runner (seed and a few tiny tasks)
    quick_only_on={
        b: frozenset()
        for b in ("user-flow-threads", "user-flow-processes", "user-flow-dask-stock")
        + ON_STOCK_SERVER
    },
    server_recorded=tuple(USER_FLOW_BACKENDS),
    # another server's CPU, the process pool's processes: not the suite's to read
    cpu_unaccounted=("user-flow-processes", *ON_STOCK_SERVER),
)
