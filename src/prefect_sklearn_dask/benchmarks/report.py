"""Turn measurements into figures, goal lines, files and Prefect artifacts.

Every figure is computed from runs made side by side in one suite run: medians over
repeats, ratios against raw Dask on the same workload, cluster and worker count.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from prefect_sklearn_dask.benchmarks import catalog
from prefect_sklearn_dask.benchmarks.base import Goal, GoalContext, Measurement, Skipped
from prefect_sklearn_dask.benchmarks.core import GOAL_TINY_TPS
from prefect_sklearn_dask.benchmarks.cpu import GROUPS, cpu_budget_ms, cpu_split

GOAL_WORKERS = 2
TABLE_KEY = "benchmark-table"
SUMMARY_KEY = "benchmark-summary"
CHART_KEY = "benchmark-chart"
COLUMNS = (
    "workload",
    "workers",
    "backend",
    "n_tasks",
    "repeats",
    "wall_median_s",
    "wall_min_s",
    "wall_max_s",
    "submit_median_s",
    "startup_median_s",
    "tasks_per_s",
    "ratio_to_raw_dask",
    "bound_s",
    "efficiency",
    "bytes_per_task",
    "first_loads",
    "work_inflation",
    "cpu_flow_ms",
    "cpu_workers_ms",
    "cpu_server_ms",
    "cpu_total_ms",
    "best_cv",
    "skipped",
    "error",
)
PACKAGES = (
    "prefect",
    "prefect-dask",
    "dask",
    "distributed",
    "scikit-learn",
    "joblib",
    "numpy",
    "pandas",
    "bokeh",
)


def critical_path_bound(item_seconds: list[list[float]], workers: int) -> float | None:
    """max(longest task, total work / workers), per-item medians over repeats."""
    if not item_seconds or not item_seconds[0]:
        return None
    per_item = [statistics.median(values) for values in zip(*item_seconds, strict=True)]
    return max(max(per_item), sum(per_item) / workers)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarize(
    results: dict[tuple[str, int, str], list[Measurement | Skipped | str]],
    dataset_bytes: dict[str, int],
) -> list[dict[str, Any]]:
    """One row per (workload, workers, backend): medians, ratios, efficiency, bytes."""
    rows: list[dict[str, Any]] = []
    for (workload, workers, backend), runs in results.items():
        ok = [m for m in runs if isinstance(m, Measurement)]
        errors = [e for e in runs if isinstance(e, str)]
        skips = [s.reason for s in runs if isinstance(s, Skipped)]
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(workload=workload, workers=workers, backend=backend, repeats=len(ok))
        row["error"] = errors[0] if errors else ""
        row["skipped"] = skips[0] if skips else ""
        if ok:
            walls = [m.wall for m in ok]
            row["n_tasks"] = ok[0].n_tasks
            row["wall_median_s"] = _r(statistics.median(walls))
            row["wall_min_s"] = _r(min(walls))
            row["wall_max_s"] = _r(max(walls))
            submits = [m.submit for m in ok if m.submit is not None]
            row["submit_median_s"] = _r(statistics.median(submits)) if submits else None
            row["startup_median_s"] = _r(statistics.median(m.startup for m in ok))
            row["tasks_per_s"] = _r(ok[0].n_tasks / statistics.median(walls), 1)
            sent = [m.bytes_to_workers for m in ok if m.bytes_to_workers is not None]
            row["bytes_per_task"] = int(statistics.median(sent) / ok[0].n_tasks) if sent else None
            loads = [m.first_loads for m in ok if m.first_loads is not None]
            row["first_loads"] = max(loads) if loads else None
            row["_item_seconds"] = [m.item_seconds for m in ok if m.item_seconds]
            works = [m.work_s for m in ok if m.work_s is not None]
            row["_work_s"] = statistics.median(works) if works else None
            for group in (*GROUPS, "total"):
                values = [m.cpu_ms[group] for m in ok if m.cpu_ms and m.cpu_ms[group] is not None]
                row[f"cpu_{group}_ms"] = _r(statistics.median(values), 2) if values else None
            row["flow_run_ids"] = [m.flow_run_id for m in ok if m.flow_run_id]
            catalog.row_fields(row, ok)
        rows.append(row)
    _add_relative(rows)
    for row in rows:
        row.pop("_item_seconds", None)
        row.pop("_work_s", None)
    return rows


def _add_relative(rows: list[dict[str, Any]]) -> None:
    index = {(r["workload"], r["workers"], r["backend"]): r for r in rows}
    for row in rows:
        key = (row["workload"], row["workers"])
        raw = index.get((*key, "raw-dask"))
        seq = index.get((*key, "sequential"))
        # per-task time over raw Dask's (unrounded: seed's tasks/s are ~1-3 per second)
        if raw and raw.get("wall_median_s") and row.get("wall_median_s"):
            per_task = row["wall_median_s"] / row["n_tasks"]
            row["ratio_to_raw_dask"] = _r(per_task / (raw["wall_median_s"] / raw["n_tasks"]))
        bound = critical_path_bound(seq.get("_item_seconds") or [], row["workers"]) if seq else None
        # A bound under 50 ms (near-empty tasks) says nothing about scheduling.
        if bound and bound > 0.05 and row.get("wall_median_s") and row["backend"] != "sequential":
            row["bound_s"] = _r(bound)
            row["efficiency"] = _r(bound / row["wall_median_s"])
        # Work inflation: the items' own seconds as this backend ran them over the same
        # items run one at a time. Above 1, running side by side slowed the work itself
        # (shared caches and memory bandwidth), which no scheduler can win back.
        seq_work = seq.get("_work_s") if seq else None
        if seq_work and seq_work > 0.05 and row.get("_work_s") and row["backend"] != "sequential":
            row["work_inflation"] = _r(row["_work_s"] / seq_work)


def goal_workers(counts: list[int]) -> int:
    """The worker count the goals are judged at: 2, or the nearest one measured."""
    return min(counts, key=lambda w: abs(w - GOAL_WORKERS)) if counts else GOAL_WORKERS


def goals(
    rows: list[dict[str, Any]], dataset_bytes: dict[str, int], cores: int | None = None
) -> list[Goal]:
    """Every rows module's goals, judged at 2 workers (or the nearest count measured)."""
    workers = goal_workers(sorted({r["workers"] for r in rows}))
    index = {(r["workload"], r["backend"]): r for r in rows if r["workers"] == workers}

    def row(workload: str, backend: str) -> dict[str, Any] | None:
        found = index.get((workload, backend))
        return found if found and found.get("wall_median_s") is not None else None

    context = GoalContext(
        row, f" ({workers} workers)", workers, dataset_bytes, cores or os.cpu_count() or 1
    )
    return catalog.goals(context)


def scaling_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Median wall per worker count and the speed-up, for the project's and raw Dask's rows."""
    walls: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        if r["backend"] in catalog.SCALING_BACKENDS and r.get("wall_median_s") is not None:
            walls.setdefault((r["workload"], r["backend"]), {})[r["workers"]] = r["wall_median_s"]
    lines = []
    for (workload, backend), by_count in walls.items():
        if len(by_count) < 2:
            continue
        counts = sorted(by_count)
        first, last = by_count[counts[0]], by_count[counts[-1]]
        lines.append(
            f"{workload} {backend}: "
            + ", ".join(f"w={w} {by_count[w]:.2f} s" for w in counts)
            + f"; speed-up w={counts[0]} -> w={counts[-1]} {first / last:.2f}x"
        )
    return lines


# Environment ---------------------------------------------------------------------------


def git_commit(root: Path) -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}{'+dirty' if dirty else ''}"


def machine(root: Path) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": os.cpu_count(),
        "cores_available": affinity,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "versions": versions,
        "git_commit": git_commit(root),
    }


# Text ----------------------------------------------------------------------------------

TEXT_COLUMNS = (
    ("workload", "workload"),
    ("w", "workers"),
    ("backend", "backend"),
    ("tasks", "n_tasks"),
    ("median s", "wall_median_s"),
    ("min", "wall_min_s"),
    ("max", "wall_max_s"),
    ("submit s", "submit_median_s"),
    ("startup s", "startup_median_s"),
    ("tasks/s", "tasks_per_s"),
    ("x raw", "ratio_to_raw_dask"),
    ("eff", "efficiency"),
    ("work x", "work_inflation"),
    ("B/task", "bytes_per_task"),
    ("cpu ms/task flow", "cpu_flow_ms"),
    ("workers", "cpu_workers_ms"),
    ("server", "cpu_server_ms"),
    ("total", "cpu_total_ms"),
)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(h for h, _ in TEXT_COLUMNS) + " |"
    rule = "|" + "---|" * len(TEXT_COLUMNS)
    body = [
        "| "
        + " | ".join(_cell(r.get(k)) for _, k in TEXT_COLUMNS)
        + " |"
        + (f" error: {r['error']}" if r.get("error") else "")
        + (f" skipped: {r['skipped']}" if r.get("skipped") else "")
        for r in rows
    ]
    return "\n".join([head, rule, *body])


def text_table(rows: list[dict[str, Any]]) -> str:
    cells = [[h for h, _ in TEXT_COLUMNS]] + [
        [_cell(r.get(k)) for _, k in TEXT_COLUMNS] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TEXT_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    errors = [f"  {r['workload']}/{r['backend']}: {r['error']}" for r in rows if r.get("error")]
    skips = [f"  {r['workload']}/{r['backend']}: {r['skipped']}" for r in rows if r.get("skipped")]
    return "\n".join(
        lines + (["errors:", *errors] if errors else []) + (["skipped:", *skips] if skips else [])
    )


CPU_BACKENDS = ("prefect-threads", "prefect-dask-stock", "prefect-dask", "raw-dask")


def cpu_lines(rows: list[dict[str, Any]], cores: int) -> str:
    """Where a task's time goes: CPU per task by process on the many-task workloads."""
    lines = [
        f"- {r['workload']} w={r['workers']} {r['backend']}: {cpu_split(r)}"
        for r in rows
        if r["workload"] in ("grid", "tiny")
        and r["backend"] in CPU_BACKENDS
        and r.get("cpu_total_ms") is not None
    ]
    return (
        f"{cores} cores give {cpu_budget_ms(cores, GOAL_TINY_TPS):.1f} ms of CPU per task at "
        f"{GOAL_TINY_TPS:.0f} tasks/s, for the flow, the workers and the server together.\n\n"
        + ("\n".join(lines) or "- not measured")
    )


def summary_markdown(report: dict[str, Any]) -> str:
    meta = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    goal_lines = "\n".join(f"- {g['line']}" for g in report["goals"])
    startup = report["startup"]
    clusters = ", ".join(f"{w} workers {s:.1f} s" for w, s in startup["cluster_s"].items())
    scaling = "\n".join(f"- {line}" for line in scaling_lines(report["rows"]))
    return (
        f"# Benchmark: {', '.join(report['args']['workloads'])}\n\n"
        f"{meta['cores']} cores ({meta['processor']}, {meta['platform']}), Python "
        f"{meta['python']}; {versions}; commit `{meta['git_commit']}`.\n\n"
        f"## Goals\n\n{goal_lines}\n\n"
        f"## Scaling (median wall by workers)\n\n{scaling or '- one worker count only'}\n\n"
        f"## Where a task's time goes (CPU ms per task by process)\n\n"
        f"{cpu_lines(report['rows'], meta['cores'])}\n\n"
        f"## Startup (outside every wall below)\n\n"
        f"Prefect server: {startup['server_s']:.1f} s "
        f"({'started' if startup['server_started'] else 'reused'}); "
        f"warm LocalCluster: {clusters}.\n\n"
        f"## Medians over {report['args']['repeats']} repeat(s)\n\n"
        f"{markdown_table(report['rows'])}\n\n"
        "`x raw`: time per task relative to raw Dask `client.map` on the same warm cluster "
        "(1.00 = no overhead). `eff`: critical-path bound max(longest task, total work / "
        "workers) over the median wall. `B/task`: bytes the scheduler sent to workers per "
        "task. `work x`: the items' own seconds as run over the same items run one at a "
        "time (above 1: parallel runs slowed the work itself). `cpu ms/task`: CPU of this "
        "process (flow, client, LocalCluster scheduler), the workers and the Prefect server, "
        "per task, server read once it is quiet.\n"
    )


# Files and artifacts -------------------------------------------------------------------


def write_files(report: dict[str, Any], out: Path, stamp: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / f"bench-{stamp}.json",
        "csv": out / f"bench-{stamp}.csv",
        "html": out / f"bench-{stamp}.html",
    }
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    with open(paths["csv"], "w", newline="") as handle:
        meta = report["machine"]
        writer = csv.DictWriter(
            handle,
            fieldnames=[*COLUMNS, "cores", "git_commit", "prefect", "distributed"],
            extrasaction="ignore",
        )
        writer.writeheader()
        for row in report["rows"]:
            writer.writerow(
                {
                    **row,
                    "cores": meta["cores"],
                    "git_commit": meta["git_commit"],
                    "prefect": meta["versions"]["prefect"],
                    "distributed": meta["versions"]["distributed"],
                }
            )
    chart(report["rows"], paths["html"])
    return paths


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Per workload: each backend's time as a multiple of raw Dask, scaling where measured."""
    from prefect_sklearn_dask.reports.benchmark_chart import benchmark_html

    path.write_text(benchmark_html(rows))


def publish(report: dict[str, Any], paths: dict[str, Path]) -> None:
    """Table, summary and chart link as Prefect artifacts under stable keys (history per key)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(
        table=[{k: ("" if row[k] is None else row[k]) for k in COLUMNS} for row in report["rows"]],
        key=TABLE_KEY,
        description="Benchmark medians: every backend side by side on the same workloads.",
    )
    create_markdown_artifact(
        markdown=summary_markdown(report)
        + f"\nFiles: `{paths['json']}`, `{paths['csv']}`, chart `{paths['html']}`\n",
        key=SUMMARY_KEY,
        description="Benchmark ratios and goal lines (pass/fail).",
    )
    from prefect_sklearn_dask.flow.comparison import open_hint

    create_markdown_artifact(
        markdown=f"# Benchmark chart\n\n{open_hint(str(paths['html']), served_chart_url(paths))}\n",
        key=CHART_KEY,
        description="Each backend's wall as a multiple of raw Dask; scaling curves.",
    )


def served_chart_url(paths: dict[str, Path]) -> str | None:
    """The chart over http from the long-lived cluster (as the runs' pages), or None.

    A browser does not follow a ``file://`` link from the Prefect UI; that cluster serves
    the ``.html`` files under the runs' folder, so a copy goes there when it runs.
    """
    from prefect_sklearn_dask.cluster.run_files import runs_root, served_url

    served = runs_root() / "benchmarks" / paths["html"].name
    url = served_url(served)
    if url:
        served.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["html"], served)
    return url
