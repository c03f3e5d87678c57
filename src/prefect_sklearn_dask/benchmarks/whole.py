"""Whole-command rows: each a process as a user types it, timed from start to exit.

The other rows time work inside one warm process; a user waits for the whole command:
interpreter start, imports, the flow run, worker preparation, refits, evaluation, chart,
report and artifacts. Side by side on the suite's warm cluster and Prefect server:

* ``cmd-train-search``: ``python flows/train.py --runner dask --address A --search grid
  --search-space S --cv 3 --no-cache`` on ``search-uneven`` (:mod:`.search_bench`);
* ``cmd-sklearn-gridsearch``: the same fits as a scikit-learn script, one
  ``GridSearchCV(n_jobs=W)`` per model on loky processes (:mod:`.sklearn_script`);
* ``cmd-train-default-dask`` / ``-threads``: the default job (``make run``'s
  ``flows/train.py --runner dask`` on the warm cluster) and the same job on threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prefect_sklearn_dask.benchmarks.base import (
    Env,
    Goal,
    GoalContext,
    Item,
    Measurement,
    Rows,
    Workload,
)
from prefect_sklearn_dask.ml.registry import DEFAULT_MODELS

TRAIN = Path(__file__).resolve().parents[3] / "flows" / "train.py"
SEARCH = "cmd-train-search"
SKLEARN = "cmd-sklearn-gridsearch"
DEFAULT_DASK = "cmd-train-default-dask"
DEFAULT_THREADS = "cmd-train-default-threads"
UNEVEN = "search-uneven"  # the search workload these rows share (search_bench)
DEFAULT_JOB = "default-job"
GOAL_VS_SKLEARN = 1.0
DESCRIPTIONS = {
    SEARCH: "whole process: flows/train.py --runner dask --address A --search grid (same fits)",
    SKLEARN: "whole process: a script with one GridSearchCV(n_jobs=W) per model (loky)",
    DEFAULT_DASK: "whole process: the default job, flows/train.py --runner dask --address A",
    DEFAULT_THREADS: "whole process: the default job on threads, flows/train.py --runner threads",
}


def default_job(quick: bool) -> Workload:
    """``make run``'s job: the default models on the default dataset, one fit each."""
    items = tuple(Item("fit", m, model=m) for m in DEFAULT_MODELS)
    return Workload(
        DEFAULT_JOB,
        f"flows/train.py with its defaults ({len(items)} models on synthetic), whole process",
        items,
        backends=(DEFAULT_DASK, DEFAULT_THREADS),
    )


def _timed(command: list[str], timeout: float) -> tuple[float, str]:
    """Wall seconds from start to exit, and stdout; a failed command raises with its stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return wall, proc.stdout


def _train(args: list[str], env: Env, storage: str) -> tuple[float, dict[str, Any]]:
    command = [sys.executable, str(TRAIN), *args, "--no-cache", "--storage", storage, "--json"]
    wall, out = _timed(command, env.timeout)
    return wall, json.loads(out)


def run_command(backend: str, workload: Workload, env: Env) -> Measurement:
    """One whole process of ``backend``; the search rows record each model's best CV score."""
    with tempfile.TemporaryDirectory(prefix="bench-cmd-") as folder:
        if backend in (DEFAULT_DASK, DEFAULT_THREADS):
            runner = ["--runner", "dask", "--address", env.address]
            if backend == DEFAULT_THREADS:
                runner = ["--runner", "threads", "--workers", str(env.workers)]
            wall, summary = _train(runner, env, folder)
            return Measurement(backend, len(summary["rows"]), wall)
        spec = workload.search
        if backend == SKLEARN:
            command = [sys.executable, "-m", "prefect_sklearn_dask.benchmarks.sklearn_script"]
            command += ["--dataset", spec["source"], "--space", json.dumps(spec["space"])]
            command += ["--cv", str(spec["cv"]), "--n-jobs", str(env.workers)]
            wall, out = _timed(command, env.timeout)
            found = json.loads(out)
            best = {m: r["cv_mean"] for m, r in found.items()}
            fits = sum(r["fits"] for r in found.values())
            return Measurement(backend, fits, wall, extra={"best_cv": best})
        import yaml

        space = Path(folder) / "space.yaml"
        # not JSON: YAML 1.1 reads JSON's 1e-09 as a string ("1.0e-09" is a float)
        space.write_text(yaml.safe_dump(spec["space"]))
        args = ["--runner", "dask", "--address", env.address, "--dataset", spec["source"]]
        args += ["--models", ",".join(spec["space"]), "--search", "grid"]
        args += ["--search-space", str(space), "--cv", str(spec["cv"])]
        wall, summary = _train(args, env, folder)
        rows = [r for r in summary["rows"] if r.get("status") == "ok"]
        best = {r["model"]: r["search"]["cv_mean"] for r in rows}
        fits = sum(r["search"]["fits"] for r in rows)
        return Measurement(backend, fits, wall, extra={"best_cv": best})


def skip_reason(backend: str) -> str | None:
    """The training command is a file of the checkout, not of an installed package."""
    return None if backend == SKLEARN or TRAIN.is_file() else f"{TRAIN} not found"


def row_fields(row: dict[str, Any], runs: list[Measurement]) -> None:
    found = [m.extra["best_cv"] for m in runs if "best_cv" in m.extra]
    if found:
        row["best_cv_by_model"] = {m: round(v, 6) for m, v in found[0].items()}
        row["best_cv"] = round(max(found[0].values()), 6) if found[0] else None


def goals(ctx: GoalContext) -> list[Goal]:
    """The whole search command against the scikit-learn script; the default job's two runners."""
    row, at = ctx.row, ctx.at
    mine, them = row(UNEVEN, SEARCH), row(UNEVEN, SKLEARN)
    name = f"whole command: train.py --search grid vs a GridSearchCV(n_jobs=W) script{at}"
    target = f"<= {GOAL_VS_SKLEARN:.2f}x wall, whole process each, equal best CV scores"
    if mine and them:
        ratio = mine["wall_median_s"] / them["wall_median_s"]
        a, b = mine.get("best_cv_by_model") or {}, them.get("best_cv_by_model") or {}
        equal = bool(a) and a.keys() == b.keys() and all(abs(a[m] - b[m]) < 1e-9 for m in a)
        measured = (
            f"{ratio:.2f}x ({mine['wall_median_s']:.2f} s vs {them['wall_median_s']:.2f} s, "
            f"{mine['n_tasks']} fits); best CV scores "
            + ("equal" if equal else f"DIFFER: {a} vs {b}")
        )
        first = Goal(name, target, measured, ratio <= GOAL_VS_SKLEARN and equal)
    else:
        first = Goal(name, target, "not measured", None)
    dask, threads = row(DEFAULT_JOB, DEFAULT_DASK), row(DEFAULT_JOB, DEFAULT_THREADS)
    measured = "not measured"
    if dask and threads:
        measured = (
            f"dask {dask['wall_median_s']:.2f} s, threads {threads['wall_median_s']:.2f} s "
            f"({dask['wall_median_s'] / threads['wall_median_s']:.2f}x)"
        )
    second = Goal(
        f"whole command: the default job on the warm Dask cluster beside threads{at}",
        "reported side by side (no target)",
        measured,
        None,
    )
    return [first, second]


ROWS = Rows(
    name="whole",
    workloads={DEFAULT_JOB: default_job},
    backends=dict.fromkeys(DESCRIPTIONS, run_command),
    descriptions=DESCRIPTIONS,
    goals=goals,
    row_fields=row_fields,
    skip_reason=skip_reason,
    # whole processes take seconds each: not in --quick
    quick_only_on=dict.fromkeys(DESCRIPTIONS, frozenset()),
    cpu_unaccounted=tuple(DESCRIPTIONS),  # new processes the suite cannot see
)
