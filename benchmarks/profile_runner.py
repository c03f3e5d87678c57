"""Where a Prefect-on-Dask task's time goes: cProfile of the flow side and the worker side.

python benchmarks/profile_runner.py --runner stock --tasks 50
python benchmarks/profile_runner.py --runner fast --tasks 200

Flow side: ``runner.submit`` of near-empty tasks on a warm 1-worker cluster, profiled.
Worker side: the same payloads a runner ships, executed in a loop inside one Dask task on
the worker (after 3 warm-up tasks), profiled there; per-task milliseconds for both.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prefect_sklearn_dask.cli import quiet_environment  # noqa: E402

quiet_environment()

from prefect import flow  # noqa: E402

from prefect_sklearn_dask.benchmarks.base import Item  # noqa: E402
from prefect_sklearn_dask.benchmarks.work import bench_item  # noqa: E402


def _stats(profile: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def worker_loop(runner: str, task: Any, payloads: list[dict[str, Any]], top: int) -> str:
    """On the worker: run the payloads through the runner's worker-side entry point."""
    from prefect.task_engine import run_task_sync

    from prefect_sklearn_dask.bridge.fast_dask import run_prefect_task

    def one(payload: dict[str, Any]) -> None:
        if runner == "fast":
            run_prefect_task(task, **payload)
        else:
            run_task_sync(task=task, **payload)

    for payload in payloads[:3]:
        one(payload)
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for payload in payloads[3:]:
        one(payload)
    profile.disable()
    per_task = (time.perf_counter() - started) / (len(payloads) - 3) * 1000
    return f"worker side: {per_task:.1f} ms per task (profiled)\n" + _stats(profile, top)


def payloads(runner: str, n: int) -> list[dict[str, Any]]:
    """What each runner ships per task (without the Dask wrapping)."""
    from prefect.context import AssetContext, serialize_context

    from prefect_sklearn_dask.bridge.fast_dask import _ContextCache

    cache = _ContextCache()
    out = []
    for i in range(n):
        run_id = uuid4()
        kwargs = {"task": bench_item, "task_run_id": run_id, "task_inputs": {}}
        common = {
            "task_run_id": run_id,
            "parameters": {"item": Item("noop", f"noop-{i}"), "data": None},
            "wait_for": None,
            "dependencies": {},
            "return_type": "state",
        }
        if runner == "fast":
            key, blob = cache.get()
            asset = AssetContext.from_task_and_inputs(**kwargs, copy_to_child_ctx=True)
            out.append(
                {
                    **common,
                    "context_key": key,
                    "context_blob": blob,
                    "asset_context": asset.serialize(),
                }
            )
        else:
            context = serialize_context(asset_ctx_kwargs={**kwargs, "copy_to_child_ctx": True})
            out.append({**common, "context": context})
    return out


@flow(name="profile-runner")
def profile_flow(runner: str, address: str, tasks: int, top: int) -> None:
    from distributed import Client
    from prefect_dask import DaskTaskRunner

    from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner

    cls = FastDaskTaskRunner if runner == "fast" else DaskTaskRunner
    with cls(address=address) as task_runner:
        task_runner.client  # noqa: B018 - connect before timing
        for f in [task_runner.submit(bench_item, {"item": Item("noop", "w"), "data": None})]:
            f.result()
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        futures = [
            task_runner.submit(bench_item, {"item": Item("noop", f"noop-{i}"), "data": None})
            for i in range(tasks)
        ]
        profile.disable()
        per_submit = (time.perf_counter() - started) / tasks * 1000
        [f.result(timeout=300) for f in futures]
    print(f"== {runner}: flow side: {per_submit:.1f} ms per submit (profiled)")
    print(_stats(profile, top))
    with Client(address, set_as_default=False) as client:
        report = client.submit(
            worker_loop, runner, bench_item, payloads(runner, tasks + 3), top, pure=False
        ).result()
    print(f"== {runner}: {report}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=("fast", "stock"), default="fast")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--top", type=int, default=20, help="functions listed per profile")
    parser.add_argument("--server-port", type=int, default=4200)
    args = parser.parse_args()

    from distributed import LocalCluster
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_sklearn_dask.cluster.local import local_cluster_kwargs
    from prefect_sklearn_dask.server.process import ensure_server

    server = ensure_server(port=args.server_port)
    with (
        temporary_settings({PREFECT_API_URL: server.api_url}),
        LocalCluster(**local_cluster_kwargs(1, dashboard_port=0)) as cluster,
    ):
        profile_flow(args.runner, cluster.scheduler_address, args.tasks, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
