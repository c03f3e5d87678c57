"""The benchmark's vocabulary: work items, workloads, measurements, goals, rows modules.

The bottom layer of ``benchmarks/`` (``tests/test_bench_layers.py`` keeps it so): every
other module imports these types; this one imports none of its siblings. A *rows module*
(:class:`Rows`) is how the suite grows: it names workloads, the backends that run them and
the goal lines judged on their rows, and :mod:`.catalog` lists it. The layers, lowest
first: ``base``/``cpu`` -> ``work`` (runs one item) -> ``workloads`` (describe work) ->
``backends`` (run it) -> rows modules (``core``, ``user_flow``, ``search_bench``, ...) ->
``catalog`` -> ``report`` (reads results) -> ``suite`` (the flow).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_sklearn_dask.ml.data import DatasetRef


@dataclass(frozen=True)
class Item:
    """One unit of work: small, hashable, cheap to pickle."""

    kind: str  # "fit" | "fold" | "noop" | "big" | "search"
    label: str
    model: str = ""
    params: tuple[tuple[str, Any], ...] = ()
    fold: int = 0
    folds: int = 0


@dataclass(frozen=True)
class Workload:
    """Work described: its items, the dataset they read (a handle) and who runs them."""

    name: str
    description: str
    items: tuple[Item, ...]
    data: DatasetRef | None = None
    seed: int = 0
    # Only these backends run it (None: each backend's rows module decides, Rows.applies).
    backends: tuple[str, ...] | None = None
    # search workloads: {"source", "space", "halving_n_iter"} (see search_bench)
    search: dict[str, Any] | None = None
    # builds the scikit-learn GridSearchCV doing exactly these fits (the gridsearch rows)
    sklearn: Callable[[Workload], Any] | None = None

    @property
    def dataset_bytes(self) -> int:
        """Size of the feature matrix (float64), 0 when the workload has none."""
        return 0 if self.data is None else self.data.n_rows * self.data.n_features * 8


@dataclass
class Env:
    """What a repeat shares: worker count, the warm cluster and a raw client on it."""

    workers: int
    address: str
    client: Any
    quick: bool
    timeout: float
    processes: Any = None  # cpu.Processes: whose CPU a measurement reads (None: nobody's)
    # (workload, backend) -> at most this many items (slow backends on many tiny tasks)
    task_caps: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def items_for(self, backend: str, workload: Workload) -> tuple[Item, ...]:
        cap = self.task_caps.get((workload.name, backend))
        return workload.items[:cap] if cap else workload.items


@dataclass
class Measurement:
    backend: str
    n_tasks: int
    wall: float
    startup: float = 0.0
    submit: float | None = None
    bytes_to_workers: int | None = None
    first_loads: int | None = None
    item_seconds: list[float] = field(default_factory=list)
    work_s: float | None = None  # the items' own seconds, summed, as this backend ran them
    cpu_ms: dict[str, float | None] | None = None  # CPU ms per task by process group
    flow_run_id: str | None = None
    search: dict[str, Any] | None = None  # train-flow rows: best CV scores, fits by model
    extra: dict[str, Any] = field(default_factory=dict)  # a rows module's own fields


@dataclass(frozen=True)
class Skipped:
    """An optional backend that cannot run here, and why (a row with the reason)."""

    reason: str


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    measured: str
    passed: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]

    def line(self) -> str:
        return f"[{self.verdict}] {self.name}: target {self.target}; measured {self.measured}"


@dataclass(frozen=True)
class GoalContext:
    """What a rows module's goals read: ``row(workload, backend)`` at the judged worker count."""

    row: Callable[..., dict[str, Any] | None]
    at: str  # " (2 workers)", appended to each goal's name
    workers: int
    dataset_bytes: Mapping[str, int]
    cores: int


Runner = Callable[[str, Workload, Env], Measurement]


@dataclass(frozen=True)
class Rows:
    """A rows module's contribution to the suite (see ``notes``: the extension point).

    Everything is optional; a module that adds a workload and a backend fills
    ``workloads``, ``backends`` and ``descriptions`` and usually ``goals``.
    """

    name: str
    # workload name -> builder(quick): every name :func:`.catalog.build` can build
    workloads: Mapping[str, Callable[[bool], Workload]] = field(default_factory=dict)
    # the names --workload offers (None: all of ``workloads`` and ``groups``)
    listed: tuple[str, ...] | None = None
    # a --workload name that stands for several workloads: name -> names(quick)
    groups: Mapping[str, Callable[[bool], tuple[str, ...]]] = field(default_factory=dict)
    backends: Mapping[str, Runner] = field(default_factory=dict)
    descriptions: Mapping[str, str] = field(default_factory=dict)
    # whether one of its backends runs a workload that does not name its backends
    # (None: it runs only on workloads that name it)
    applies: Callable[[str, Workload], bool] | None = None
    # whether one of its workloads runs (backend, at workers, goals judged at)
    runs_at: Callable[[str, str, int, int], bool] | None = None
    goals: Callable[[GoalContext], list[Goal]] | None = None
    # adds the module's own fields to a summary row from its measurements
    row_fields: Callable[[dict[str, Any], list[Measurement]], None] | None = None
    skip_reason: Callable[[str], str | None] | None = None
    task_caps: Mapping[tuple[str, str], int] = field(default_factory=dict)
    quick_task_caps: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # --quick: these backends only on these workloads
    quick_only_on: Mapping[str, frozenset[str]] = field(default_factory=dict)
    server_recorded: tuple[str, ...] = ()  # backends whose runs the Prefect server records
    cpu_unaccounted: tuple[str, ...] = ()  # backends whose work runs where the suite can't see
    scaling: tuple[str, ...] = ()  # backends in the scaling lines (wall by worker count)


def scheduler_bytes(dask_scheduler: Any) -> int:
    """Bytes the scheduler has sent its workers (task specs included): runs on the scheduler."""
    return sum(stream.byte_count for stream in dask_scheduler.stream_comms.values())


def from_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What the items report themselves: dataset loads in the run and the work as run."""
    return {
        "first_loads": sum(Counter(r["pid"] for r in results if r["first_load"]).values()),
        "work_s": sum(r["seconds"] for r in results),
    }
