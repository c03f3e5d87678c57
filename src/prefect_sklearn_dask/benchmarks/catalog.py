"""Every rows module, composed: the names the CLI offers and how the suite runs a row.

To add rows (a workload, a backend, goal lines), write a module with a ``ROWS =
Rows(...)`` (:class:`~.base.Rows`) and list it in :data:`MODULES`; ``notes`` in
``benchmarks/README.md`` ("Adding rows") says more. Nothing below this module imports it.
"""

from __future__ import annotations

import functools
from typing import Any

from prefect_sklearn_dask.benchmarks import (
    core,
    optuna_bench,
    partitioned,
    search_bench,
    user_flow,
    whole,
)
from prefect_sklearn_dask.benchmarks.base import (
    Env,
    Goal,
    GoalContext,
    Measurement,
    Rows,
    Workload,
)
from prefect_sklearn_dask.benchmarks.cpu import per_task_ms

# The order of the rows in the table and of the goal lines.
MODULES: tuple[Rows, ...] = (
    core.ROWS,
    user_flow.ROWS,
    search_bench.ROWS,
    optuna_bench.ROWS,
    partitioned.ROWS,
    whole.ROWS,
)


def _merged(attribute: str) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for module in MODULES:
        out.update(getattr(module, attribute))
    return out


def _owners(attribute: str) -> dict[str, Rows]:
    out: dict[str, Rows] = {}
    for module in MODULES:
        for name in getattr(module, attribute):
            if name in out:
                raise ValueError(f"{name!r} is in both {out[name].name} and {module.name}")
            out[name] = module
    return out


BACKEND_OWNER = _owners("backends")
WORKLOAD_OWNER = _owners("workloads")
RUNNERS = _merged("backends")
BACKENDS: tuple[str, ...] = tuple(RUNNERS)
DESCRIPTIONS: dict[str, str] = _merged("descriptions")
WORKLOADS: tuple[str, ...] = tuple(
    dict.fromkeys(
        name
        for module in MODULES
        for name in (
            module.listed if module.listed is not None else (*module.workloads, *module.groups)
        )
    )
)
GROUPS = _merged("groups")
TASK_CAPS = _merged("task_caps")
QUICK_TASK_CAPS = _merged("quick_task_caps")
QUICK_ONLY_ON: dict[str, frozenset[str]] = _merged("quick_only_on")
SERVER_RECORDED = tuple(b for module in MODULES for b in module.server_recorded)
CPU_UNACCOUNTED = tuple(b for module in MODULES for b in module.cpu_unaccounted)
SCALING_BACKENDS = tuple(b for module in MODULES for b in module.scaling)


def expand(names: list[str], quick: bool) -> list[str]:
    """The workloads to build: a group's name stands for its workloads (``search``)."""
    out: list[str] = []
    for name in names:
        out += list(GROUPS[name](quick)) if name in GROUPS else [name]
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=16)
def build(name: str, quick: bool = False) -> Workload:
    """The workload ``name`` (validated by the CLI, expanded), built once per process."""
    return WORKLOAD_OWNER[name].workloads[name](quick)


def task_caps(quick: bool) -> dict[tuple[str, str], int]:
    return QUICK_TASK_CAPS if quick else TASK_CAPS


def applies(backend: str, workload: Workload) -> bool:
    """A workload that names its backends runs exactly those; else the backend's module says."""
    if workload.backends is not None:
        return backend in workload.backends
    decide = BACKEND_OWNER[backend].applies
    return decide(backend, workload) if decide else False


def runs_at(workload: str, backend: str, workers: int, goal_workers: int) -> bool:
    """Whether the workload's module runs this row at this worker count."""
    owner = WORKLOAD_OWNER.get(workload)
    return (
        owner.runs_at(workload, backend, workers, goal_workers) if owner and owner.runs_at else True
    )


def runs_quick(workload: str, backend: str) -> bool:
    """--quick leaves the slow backends to one workload (or none)."""
    only = QUICK_ONLY_ON.get(backend)
    return only is None or workload in only


def skip_reason(backend: str) -> str | None:
    """Why ``backend`` cannot run in this environment (None: it can)."""
    check = BACKEND_OWNER[backend].skip_reason
    return check(backend) if check else None


def measure(backend: str, workload: Workload, env: Env) -> Measurement:
    """One run of ``backend``, with the CPU each process group spent on it per task."""
    processes = None if backend in CPU_UNACCOUNTED else env.processes
    before = processes.snapshot() if processes else None
    measured = RUNNERS[backend](backend, workload, env)
    if processes:
        if backend in SERVER_RECORDED:
            processes.wait_server_quiet()  # it records the task runs after the flow returns
        measured.cpu_ms = per_task_ms(before, processes.snapshot(), measured.n_tasks)
    return measured


def row_fields(row: dict[str, Any], runs: list[Measurement]) -> None:
    """Each module's own fields on a summary row."""
    for module in MODULES:
        if module.row_fields:
            module.row_fields(row, runs)


def goals(ctx: GoalContext) -> list[Goal]:
    """Every module's goal lines, in module order."""
    return [goal for module in MODULES if module.goals for goal in module.goals(ctx)]
