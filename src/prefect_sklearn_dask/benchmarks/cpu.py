"""CPU seconds each process spends during a measurement: where a task's time goes.

A wall time on a small shared machine hides who used the cores. Around every
measurement the suite reads the CPU time of three groups of processes:

* ``flow``: this process (the flow, the Dask client, a ``LocalCluster``'s scheduler and,
  for the sequential and thread-pool backends, the work itself);
* ``workers``: the warm cluster's Dask worker processes;
* ``server``: the local Prefect server, which ingests every task run's state events
  (it keeps working after the flow returns, so its share is read once it is quiet).

On 2 cores, N tasks/s leave ``2000 / N`` ms of CPU per task for all three together.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import psutil

GROUPS = ("flow", "workers", "server")


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:  # a worker that was restarted: its time is gone
        return 0.0
    return times.user + times.system


def listening_process(api_url: str | None) -> psutil.Process | None:
    """The local process that listens on the API's port, or None (remote or unknown)."""
    if not api_url:
        return None
    parsed = urlparse(api_url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1") or parsed.port is None:
        return None
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == parsed.port and conn.pid:
            return psutil.Process(conn.pid)
    return None


@dataclass
class Processes:
    """The processes whose CPU time a measurement accounts for."""

    flow: psutil.Process = field(default_factory=psutil.Process)
    workers: list[psutil.Process] = field(default_factory=list)
    server: psutil.Process | None = None

    @classmethod
    def find(cls, client: Any, api_url: str | None) -> Processes:
        pids = client.run(os.getpid).values() if client is not None else []
        return cls(workers=[psutil.Process(p) for p in pids], server=listening_process(api_url))

    def snapshot(self) -> dict[str, float | None]:
        return {
            "flow": _cpu(self.flow),
            "workers": sum(_cpu(p) for p in self.workers),
            "server": None if self.server is None else _cpu(self.server),
        }

    def wait_server_quiet(
        self, below: float = 0.05, window: float = 1.0, quiet_windows: int = 3, limit: float = 20.0
    ) -> None:
        """Until the server has used under ``below`` of a core for ``quiet_windows`` windows.

        Three 1 s windows outlast its 2 s flush interval (``server.process.THROUGHPUT_ENV``).
        """
        if self.server is None:
            return
        deadline = time.monotonic() + limit
        last, quiet = _cpu(self.server), 0
        while quiet < quiet_windows and time.monotonic() < deadline:
            time.sleep(window)
            now = _cpu(self.server)
            quiet = quiet + 1 if now - last < below * window else 0
            last = now


def per_task_ms(
    before: dict[str, float | None], after: dict[str, float | None], n_tasks: int
) -> dict[str, float | None]:
    """CPU milliseconds per task for each group, and their total."""
    out: dict[str, float | None] = {}
    for group in GROUPS:
        a, b = before.get(group), after.get(group)
        out[group] = None if a is None or b is None else (b - a) * 1000 / max(n_tasks, 1)
    known = [v for v in out.values() if v is not None]
    out["total"] = sum(known) if known else None
    return out


def cpu_budget_ms(cores: int, tasks_per_s: float) -> float:
    """CPU milliseconds per task that ``cores`` give at ``tasks_per_s``, for every process."""
    return cores * 1000 / tasks_per_s


def cpu_split(row: dict[str, Any]) -> str:
    """'24.1 ms (flow 5.0 + workers 9.1 + server 10.0)': a row's CPU per task by group."""
    parts = " + ".join(
        f"{group} {row[f'cpu_{group}_ms']:.1f}"
        for group in GROUPS
        if row.get(f"cpu_{group}_ms") is not None
    )
    return f"{row['cpu_total_ms']:.1f} ms ({parts})"
