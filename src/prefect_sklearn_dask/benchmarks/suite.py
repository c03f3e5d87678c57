"""``benchmark-suite``: one flow run that measures every backend on one warm cluster per size.

Repeats are the outer loop and backends the inner one, so slow drift of a shared machine
spreads over every backend instead of landing on one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for

from prefect_sklearn_dask.benchmarks import catalog
from prefect_sklearn_dask.benchmarks import report as rep
from prefect_sklearn_dask.benchmarks.base import Env, Measurement, Skipped
from prefect_sklearn_dask.benchmarks.cpu import Processes
from prefect_sklearn_dask.benchmarks.work import warm_process
from prefect_sklearn_dask.cluster.local import local_cluster_kwargs

ROOT = Path(__file__).resolve().parents[3]  # the checkout, for the git commit


def _run_one(backend: str, workload, env: Env, logger) -> Measurement | Skipped | str:
    reason = catalog.skip_reason(backend)
    if reason:  # an optional backend not installed: a row that says so, every repeat
        logger.warning(f"{workload.name} w={env.workers} {backend}: skipped: {reason}")
        return Skipped(reason)
    try:
        measured = catalog.measure(backend, workload, env)
    except Exception as exc:  # one backend failing is a row with an error, not a failed suite
        logger.warning(f"{workload.name} w={env.workers} {backend}: FAILED {exc!r}")
        return f"{type(exc).__name__}: {exc}"[:300]
    logger.info(
        f"{workload.name:<8} w={env.workers} {backend:<24} {measured.wall:7.2f} s "
        f"({measured.n_tasks / measured.wall:7.1f} tasks/s)"
    )
    return measured


@flow(name="benchmark-suite", flow_run_name="bench-{stamp}")
def benchmark_suite(
    workloads: list[str],
    workers: list[int],
    repeats: int,
    quick: bool,
    backends: list[str],
    out: str,
    timeout: float,
    stamp: str,
    server: dict[str, Any],
) -> dict[str, Any]:
    """Every backend on every workload and worker count; files, artifacts, goal lines."""
    from distributed import Client, LocalCluster
    from threadpoolctl import threadpool_limits

    logger = get_run_logger()
    built = {name: catalog.build(name, quick) for name in catalog.expand(workloads, quick)}
    refs = [w.data for w in built.values() if w.data is not None]
    results: dict[tuple[str, int, str], list[Measurement | Skipped | str]] = {}
    cluster_s: dict[int, float] = {}
    sequential: dict[tuple[str, int], Measurement | Skipped | str] = {}
    # Dask's nannies run workers with 1 BLAS/OpenMP thread; the flow process does the same,
    # so sequential and thread-pool runs do the same work per task as a Dask worker.
    judged_at = rep.goal_workers(workers)
    with threadpool_limits(1):
        for count in workers:
            started = time.perf_counter()
            kwargs = local_cluster_kwargs(count, dashboard_port=0)
            with LocalCluster(**kwargs) as cluster, Client(cluster, set_as_default=False) as client:
                client.run(warm_process, refs)  # imports and dataset loads, before timing
                cluster_s[count] = time.perf_counter() - started
                logger.info(f"warm LocalCluster, {count} workers: {cluster_s[count]:.1f} s")
                processes = Processes.find(client, server["url"])
                env = Env(
                    count,
                    cluster.scheduler_address,
                    client,
                    quick,
                    timeout,
                    processes,
                    catalog.task_caps(quick),
                )
                for repeat in range(repeats):
                    for name, workload in built.items():
                        for backend in backends:
                            if not catalog.applies(backend, workload):
                                continue
                            if quick and not catalog.runs_quick(name, backend):
                                continue
                            if not catalog.runs_at(name, backend, count, judged_at):
                                continue
                            if backend == "sequential" and (name, repeat) in sequential:
                                measured = sequential[(name, repeat)]  # same work at any size
                            else:
                                measured = _run_one(backend, workload, env, logger)
                                if backend == "sequential":
                                    sequential[(name, repeat)] = measured
                            results.setdefault((name, count, backend), []).append(measured)

    dataset_bytes = {name: w.dataset_bytes for name, w in built.items()}
    rows = rep.summarize(results, dataset_bytes)
    goals = rep.goals(rows, dataset_bytes)
    report: dict[str, Any] = {
        "stamp": stamp,
        "flow_run_id": str(flow_run.id),
        "flow_run_url": url_for("flow-run", obj_id=str(flow_run.id)),
        "machine": rep.machine(ROOT),
        "args": {
            "workloads": workloads,
            "workers": workers,
            "repeats": repeats,
            "quick": quick,
            "backends": backends,
        },
        "workloads": {n: w.description for n, w in built.items()},
        "startup": {
            "server_s": server["seconds"],
            "server_started": server["started"],
            "server_url": server["url"],
            "cluster_s": cluster_s,
        },
        "rows": rows,
        "goals": [{**asdict(g), "verdict": g.verdict, "line": g.line()} for g in goals],
    }
    paths = rep.write_files(report, Path(out), stamp)
    report["files"] = {k: str(v) for k, v in paths.items()}
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    rep.publish(report, paths)
    for goal in goals:
        (logger.info if goal.passed is not False else logger.warning)(goal.line())
    return report
