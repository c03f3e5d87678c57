"""``partitioned`` rows: data bigger than one worker, trained where it lies.

Synthetic Parquet partitions written by the benchmark (``--rows``; by default ~1.5x the
data one worker can train on under ``--worker-memory``, :meth:`Settings.rows_for`: 30
float32 features, a category, an int8 label), each row on a fresh ``LocalCluster`` with
that memory limit per worker:

- ``partitioned-project``: the project's whole ``train_flow(models=["xgb"])`` on the
  directory (metadata checks, the profiling pass, training, held-out scores, model,
  artifacts, chart);
- ``partitioned-raw``: raw ``xgboost.dask`` on the same partitions with the same
  parameters (``read_parquet``, ``categorize``, ``DaskQuantileDMatrix``, ``train``, then
  accuracy from ``predict``);
- ``partitioned-pandas``: one process, pandas + ``XGBClassifier`` on the same rows (in a
  child process, for its peak RSS), where the data fits in this machine's memory.

Goals: the project within 1.10x raw xgboost.dask; at most 1 MB of results into the
flow's process (the model aside); the peak worker memory under its limit with no worker
restarted; the scaling line w=1 -> w=2 (``--workers 1,2 --rows N`` with N that one worker
can hold: at the default size one worker is meant to run out).
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect_sklearn_dask.benchmarks.base import Env, Goal, GoalContext, Measurement, Rows, Workload

NAME = "partitioned"
PROJECT, RAW, PANDAS = "partitioned-project", "partitioned-raw", "partitioned-pandas"
DESCRIPTIONS = {
    PROJECT: "partitioned: the project's whole train_flow(models=['xgb']) on a Parquet folder",
    RAW: "partitioned: raw xgboost.dask (DaskQuantileDMatrix, train, predict), same params",
    PANDAS: "partitioned: one process, pandas + XGBClassifier (where the data fits)",
}
FEATURES = 30
ROW_BYTES = FEATURES * 4 + 1 + 1  # float32 features, category codes, int8 label
WORKER_BASE_BYTES = 400 * 2**20  # a worker with the imports, before any data
# A worker's free memory over the bytes of data it can train on: the partitions, the
# DaskQuantileDMatrix built from them and XGBoost's working set. Calibrated on the
# issue's scenario: 4M rows (465 MB) trained on 2 x 1500MB workers, killed at 2 x 900MB;
# 1.5x a worker's free memory of raw data (13.3M rows) killed both xgboost.dask and the
# project on 2 x 1500MB.
XGB_MEMORY_FACTOR = 3.5
XGB = {"n_estimators": 50, "max_depth": 6, "learning_rate": 0.3, "max_bin": 256}
GOAL_RATIO = 1.10
GOAL_BYTES = 2**20
QUICK_ROWS = 50_000
PARTITION_ROWS = 500_000


@dataclass
class Settings:
    """What ``benchmarks/compare.py`` sets from ``--rows`` and ``--worker-memory``."""

    rows: int | None = None
    worker_memory: str = "1500MB"

    def rows_for(self, quick: bool) -> int:
        """``--rows``, else ~1.5x the data one worker can train on (its free memory over
        :data:`XGB_MEMORY_FACTOR`): more than one worker holds, within what two hold
        (quick: a small set). 1500MB: 3.86M rows (~470 MB)."""
        from dask.utils import parse_bytes

        if self.rows:
            return self.rows
        if quick:
            return QUICK_ROWS
        free = max(parse_bytes(self.worker_memory) - WORKER_BASE_BYTES, 64 * 2**20)
        return int(1.5 * free / XGB_MEMORY_FACTOR / ROW_BYTES)


SETTINGS = Settings()
_FOLDERS: dict[int, Path] = {}


def configure(rows: int | None, worker_memory: str | None) -> None:
    SETTINGS.rows = rows
    if worker_memory:
        SETTINGS.worker_memory = worker_memory


def data_folder(rows: int) -> Path:
    """The synthetic partitions for ``rows``, written once per process, removed at exit."""
    if rows not in _FOLDERS:
        from prefect_sklearn_dask.ml.partitioned.synthetic import write_synthetic

        folder = Path(tempfile.mkdtemp(prefix=f"psd-bench-partitioned-{rows}-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        partitions = max(8, -(-rows // PARTITION_ROWS))
        write_synthetic(folder, rows=rows, partitions=partitions, features=FEATURES, seed=0)
        _FOLDERS[rows] = folder
    return _FOLDERS[rows]


def build(quick: bool) -> Workload:
    rows = SETTINGS.rows_for(quick)
    return Workload(
        NAME,
        f"{rows:,} rows x {FEATURES} float32 + a category + an int8 label in Parquet "
        f"partitions, workers limited to {SETTINGS.worker_memory}; xgb, {XGB['n_estimators']} "
        "rounds, hist",
        items=(),
        backends=(PROJECT, RAW, PANDAS),
    )


def cluster(env: Env):
    """A fresh cluster for one row, each worker limited to ``--worker-memory``."""
    from distributed import LocalCluster

    from prefect_sklearn_dask.cluster.local import local_cluster_kwargs

    kwargs = local_cluster_kwargs(
        env.workers, dashboard_port=0, worker_memory=SETTINGS.worker_memory
    )
    return LocalCluster(**kwargs)


def run_project(backend: str, workload: Workload, env: Env) -> Measurement:
    """The whole flow on its own cluster; the flow's received bytes and worker peak."""
    from prefect_sklearn_dask.flow.train_flow import train_flow
    from prefect_sklearn_dask.ml.partitioned.tree import RECEIVED

    folder = data_folder(SETTINGS.rows_for(env.quick))
    with cluster(env) as dask_cluster, tempfile.TemporaryDirectory() as storage:
        before = RECEIVED.bytes
        started = time.perf_counter()
        summary = train_flow(
            dataset=str(folder),
            target="label",
            models=["xgb"],
            runner="dask",
            address=dask_cluster.scheduler_address,
            storage=storage,
            cache=False,
            performance_report=False,
        )
        wall = time.perf_counter() - started
        received = RECEIVED.bytes - before
        limit = _limit_mb(dask_cluster)
    [row] = [r for r in summary["rows"] if r["model"] == "xgb"]
    if row.get("status") != "ok":
        raise RuntimeError(f"xgb failed: {row.get('error')}")
    extra = {
        "accuracy": row["accuracy"],
        "peak_worker_mb": row.get("peak_worker_mb"),
        "worker_limit_mb": limit,
        "bytes_to_flow": received,
        "rows": summary["dataset"]["n_rows"],
    }
    return Measurement(backend, 1, wall, flow_run_id=summary["flow_run_id"], extra=extra)


def _limit_mb(dask_cluster) -> float:
    workers = dask_cluster.scheduler_info["workers"].values()
    return round(min(w["memory_limit"] for w in workers) / 2**20, 1)


def raw_xgboost(client, folder: Path, seed: int = 0) -> float:
    """What a user writes with xgboost.dask alone: train, then accuracy from predict."""
    import dask.dataframe as dd
    from xgboost import dask as dxgb

    # persisted first: X and y must keep the same partitions (dask-expr would merge the
    # label's small column reads into fewer, which xgboost.dask refuses)
    frame = client.persist(dd.read_parquet(str(folder)).categorize(columns=["colour"]))
    X, y = frame.drop(columns=["label"]), frame["label"]
    dtrain = dxgb.DaskQuantileDMatrix(client, X, y, enable_categorical=True, max_bin=XGB["max_bin"])
    params = {
        "tree_method": "hist",
        "objective": "binary:logistic",
        "max_depth": XGB["max_depth"],
        "learning_rate": XGB["learning_rate"],
        "max_bin": XGB["max_bin"],
        "seed": seed,
        "verbosity": 0,
    }
    booster = dxgb.train(client, params, dtrain, num_boost_round=XGB["n_estimators"])["booster"]
    predicted = dxgb.predict(client, booster, X)
    return float(((predicted > 0.5).astype("int8") == y.to_dask_array()).mean().compute())


def run_raw(backend: str, workload: Workload, env: Env) -> Measurement:
    from distributed import Client

    from prefect_sklearn_dask.bridge.worker_memory import WorkerMemory

    folder = data_folder(SETTINGS.rows_for(env.quick))
    with cluster(env) as dask_cluster, Client(dask_cluster) as client:
        watch = WorkerMemory.mark(client)
        started = time.perf_counter()
        with client.as_current():
            accuracy = raw_xgboost(client, folder)
        wall = time.perf_counter() - started
        peaks = watch.peaks()
        limit = _limit_mb(dask_cluster)
    extra = {
        "accuracy": accuracy,
        "peak_worker_mb": round(peaks["peak_bytes"] / 2**20, 1),
        "worker_limit_mb": limit,
    }
    return Measurement(backend, 1, wall, extra=extra)


def pandas_child(folder: str, threads: int) -> None:
    """In a child process: read everything, fit on 75%, score on 25%; print JSON."""
    import resource

    import pandas as pd
    from xgboost import XGBClassifier

    started = time.perf_counter()
    frame = pd.read_parquet(folder)
    test = frame.index % 4 == 0
    X, y = frame.drop(columns=["label"]), frame["label"]
    model = XGBClassifier(
        **XGB, tree_method="hist", enable_categorical=True, n_jobs=threads, random_state=0
    )
    model.fit(X[~test], y[~test])
    accuracy = float((model.predict(X[test]) == y[test]).mean())
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "accuracy": accuracy}))


def run_pandas(backend: str, workload: Workload, env: Env) -> Measurement:
    folder = data_folder(SETTINGS.rows_for(env.quick))
    code = (
        "import sys; from prefect_sklearn_dask.benchmarks.partitioned import pandas_child; "
        "pandas_child(sys.argv[1], int(sys.argv[2]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(env.workers)],
        capture_output=True,
        text=True,
        timeout=env.timeout,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit {done.returncode}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    extra = {"accuracy": found["accuracy"], "peak_rss_mb": round(found["peak_rss_mb"], 1)}
    return Measurement(backend, 1, found["seconds"], extra=extra)


def skip_reason(backend: str) -> str | None:
    """The single-process row only where the data fits (3 copies: frame, split, DMatrix)."""
    if backend != PANDAS:
        return None
    import psutil

    need = SETTINGS.rows_for(False) * ROW_BYTES * 3
    available = psutil.virtual_memory().available
    if need < 0.8 * available:
        return None
    return f"needs ~{need / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available"


FIELDS = ("accuracy", "peak_worker_mb", "worker_limit_mb", "bytes_to_flow", "peak_rss_mb", "rows")


def add_row_fields(row: dict[str, Any], runs: list[Measurement]) -> None:
    """The worst peak, the largest bytes and the first accuracy over the repeats."""
    found = [m.extra for m in runs if m.backend in DESCRIPTIONS and m.extra]
    for key in FIELDS:
        values = [f[key] for f in found if f.get(key) is not None]
        if values:
            row[key] = values[0] if key == "accuracy" else max(values)


def goals(ctx: GoalContext) -> list[Goal]:
    row, at = ctx.row, ctx.at
    mine, raw = row(NAME, PROJECT), row(NAME, RAW)
    if not (mine or raw or row(NAME, PANDAS)):
        return []  # not run (--quick leaves it out): no lines, not n/a ones
    out = []
    if mine and raw:
        ratio = mine["wall_median_s"] / raw["wall_median_s"]
        measured = (
            f"{ratio:.2f}x ({mine['wall_median_s']:.2f} s vs {raw['wall_median_s']:.2f} s; "
            f"accuracy {mine.get('accuracy')} vs {raw.get('accuracy')})"
        )
        single = row(NAME, PANDAS)
        if single:
            measured += (
                f"; one process, pandas + XGBoost: {single['wall_median_s']:.2f} s, peak RSS "
                f"{single.get('peak_rss_mb')} MB"
            )
        out.append(
            Goal(
                f"partitioned: project xgb vs raw xgboost.dask{at}",
                f"<= {GOAL_RATIO:.2f}x",
                measured,
                ratio <= GOAL_RATIO,
            )
        )
    else:
        out.append(
            Goal(
                f"partitioned: project xgb vs raw xgboost.dask{at}",
                f"<= {GOAL_RATIO:.2f}x",
                "not measured",
                None,
            )
        )
    sent = mine.get("bytes_to_flow") if mine else None
    out.append(
        Goal(
            f"partitioned: bytes into the flow's process, model aside{at}",
            f"<= {GOAL_BYTES / 2**20:.0f} MB",
            "not measured" if sent is None else f"{sent:,} B",
            None if sent is None else sent <= GOAL_BYTES,
        )
    )
    peak = mine.get("peak_worker_mb") if mine else None
    limit = mine.get("worker_limit_mb") if mine else None
    out.append(
        Goal(
            f"partitioned: peak worker memory under its limit{at}",
            "peak < limit",
            "not measured" if peak is None else f"{peak:.0f} MB of {limit:.0f} MB",
            None if peak is None or not limit else peak < limit,
        )
    )
    return out


ROWS = Rows(
    name=NAME,
    workloads={NAME: build},
    backends={PROJECT: run_project, RAW: run_raw, PANDAS: run_pandas},
    descriptions=DESCRIPTIONS,
    goals=goals,
    row_fields=add_row_fields,
    skip_reason=skip_reason,
    # --quick (CI) leaves these rows out: run `--workload partitioned` for them
    quick_only_on={b: frozenset() for b in (PROJECT, RAW, PANDAS)},
    server_recorded=(PROJECT,),
    # their work runs on clusters of their own, which the suite's CPU accounting can't see
    cpu_unaccounted=(PROJECT, RAW, PANDAS),
    scaling=(PROJECT, RAW),
)
