"""The core rows: seed, grid, tiny and bigdata on every core backend, and their goals.

A rows module (:class:`~.base.Rows`) like :mod:`.user_flow` and :mod:`.search_bench`:
the workloads come from :mod:`.workloads`, the backends from :mod:`.backends`.
"""

from __future__ import annotations

from prefect_sklearn_dask.benchmarks import backends, workloads
from prefect_sklearn_dask.benchmarks.base import Goal, GoalContext, Rows, Workload
from prefect_sklearn_dask.benchmarks.cpu import cpu_budget_ms, cpu_split

GOAL_RATIO = 1.05
GOAL_EFFICIENCY = 0.90
GOAL_TINY_TPS = 150.0
PROJECT_RUNNER = "prefect-dask"


def applies(backend: str, workload: Workload) -> bool:
    """GridSearchCV backends only where a GridSearchCV does the same fits; joblib's own
    where the items are its unit."""
    if backend.startswith("sklearn-gridsearch"):
        return workload.sklearn is not None
    if backend.startswith("joblib"):
        return workload.sklearn is None
    return True


def goals(ctx: GoalContext) -> list[Goal]:
    """The core goals, judged on the project's runner."""
    row, at, workers = ctx.row, ctx.at, ctx.workers
    out: list[Goal] = []
    for workload in ("seed", "grid"):
        mine, stock = row(workload, PROJECT_RUNNER), row(workload, "prefect-dask-stock")
        ratio = mine.get("ratio_to_raw_dask") if mine else None
        stock_ratio = stock.get("ratio_to_raw_dask") if stock else None
        out.append(
            Goal(
                f"{workload}: Prefect-on-Dask vs raw Dask{at}",
                f"<= {GOAL_RATIO:.2f}x",
                "not measured"
                if ratio is None
                else f"{ratio:.2f}x (stock DaskTaskRunner: "
                + (f"{stock_ratio:.2f}x)" if stock_ratio else "not run)"),
                None if ratio is None else ratio <= GOAL_RATIO,
            )
        )
    effs = {w: (row(w, PROJECT_RUNNER) or {}).get("efficiency") for w in ("seed", "grid")}
    effs = {w: e for w, e in effs.items() if e is not None}
    raw_effs = {w: (row(w, "raw-dask") or {}).get("efficiency") for w in effs}
    out.append(
        Goal(
            f"parallel efficiency of Prefect-on-Dask vs critical-path bound{at}",
            f">= {GOAL_EFFICIENCY:.2f}",
            ", ".join(f"{w} {e:.2f} (raw Dask {raw_effs[w] or 0:.2f})" for w, e in effs.items())
            or "not measured",
            min(effs.values()) >= GOAL_EFFICIENCY if effs else None,
        )
    )
    big = row("bigdata", PROJECT_RUNNER)
    if big and big.get("bytes_per_task") is not None:
        size = ctx.dataset_bytes.get("bigdata", 0)
        ok = (big["first_loads"] or 0) <= workers and big["bytes_per_task"] < 0.01 * size
        measured = (
            f"{big['bytes_per_task']:,} B/task sent to workers for a {size / 1e6:.0f} MB dataset; "
            f"{big['first_loads']} loads during the timed run (each worker loads once, at warm-up)"
        )
    else:
        ok, measured = None, "not measured"
    out.append(Goal(f"bigdata: dataset shipped once per worker{at}", "not per task", measured, ok))
    tiny, stock = row("tiny", PROJECT_RUNNER), row("tiny", "prefect-dask-stock")
    tps = tiny.get("tasks_per_s") if tiny else None
    measured = (
        "not measured"
        if tps is None
        else f"{tps:.0f} tasks/s (stock DaskTaskRunner {(stock or {}).get('tasks_per_s')}, "
        f"raw Dask {(row('tiny', 'raw-dask') or {}).get('tasks_per_s')}, "
        f"threads {(row('tiny', 'prefect-threads') or {}).get('tasks_per_s')})"
    )
    if tiny and tiny.get("cpu_total_ms"):
        budget = cpu_budget_ms(ctx.cores, GOAL_TINY_TPS)
        measured += f"; {cpu_split(tiny)} of CPU per task, {budget:.1f} ms budget"
    out.append(
        Goal(
            f"tiny: tasks/s through the Dask runner{at}",
            f">= {GOAL_TINY_TPS:.0f}",
            measured,
            None if tps is None else tps >= GOAL_TINY_TPS,
        )
    )
    return out


ROWS = Rows(
    name="core",
    workloads=workloads.BUILDERS,
    backends=backends.RUNNERS,
    descriptions=backends.DESCRIPTIONS,
    applies=applies,
    goals=goals,
    # Stock DaskTaskRunner manages ~10 tasks/s: its tasks/s is measured on fewer tasks.
    task_caps={("tiny", "prefect-dask-stock"): 200, ("tiny", "prefect-processes"): 200},
    quick_task_caps={("tiny", "prefect-dask-stock"): 40},
    # a second cluster to start, stock DaskTaskRunner's ~0.1 s per task: one workload
    quick_only_on={
        "prefect-dask-own": frozenset({"tiny"}),
        "prefect-dask-stock": frozenset({"tiny"}),
        "prefect-processes": frozenset({"seed"}),
    },
    server_recorded=backends.PREFECT_BACKENDS,
    # its own cluster, loky's or Prefect's process pool: processes the suite cannot see
    cpu_unaccounted=("prefect-dask-own", "prefect-processes", "joblib", "sklearn-gridsearch"),
    scaling=(PROJECT_RUNNER, "raw-dask"),
)
