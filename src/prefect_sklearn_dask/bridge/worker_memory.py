"""The peak memory each Dask worker reached during a stretch of work, from the samples
every worker already takes (its system monitor, every 500 ms): nothing polls the workers
while the work runs, and a worker that was restarted (killed for memory) says so.

    watch = WorkerMemory.mark(client)
    ...                                     # training
    peaks = watch.peaks()                   # {"peak_bytes": ..., "limit_bytes": ..., ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _mark(dask_worker=None) -> tuple[str, int]:
    return dask_worker.id, dask_worker.monitor.count


def _peak(marks: dict[str, tuple[str, int]], dask_worker=None) -> dict[str, Any]:
    """This worker's highest RSS sample since its mark (since its start, if it was
    restarted or joined later)."""
    monitor = dask_worker.monitor
    samples = list(monitor.quantities["memory"])
    mark = marks.get(dask_worker.address)
    same = mark is not None and mark[0] == dask_worker.id
    if same:
        new = monitor.count - mark[1]
        samples = samples[-new:] if new > 0 else []
    samples.append(monitor.get_process_memory())
    return {
        "peak_bytes": int(max(samples)),
        "limit_bytes": int(dask_worker.memory_manager.memory_limit or 0),
        "new_since_mark": not same,
    }


@dataclass(frozen=True)
class WorkerMemory:
    """Marks taken on every worker at the start; :meth:`peaks` reads them back."""

    client: Any
    marks: dict[str, tuple[str, int]]

    @classmethod
    def mark(cls, client) -> WorkerMemory:
        return cls(client, client.run(_mark))

    def peaks(self) -> dict[str, Any]:
        """The highest worker peak, its limit, each worker's, and the workers that were
        not there at the mark (restarted, or added by adaptive scaling)."""
        per_worker = self.client.run(_peak, self.marks)
        lost = sorted(set(self.marks) - set(per_worker))
        worst = max(per_worker.values(), key=lambda w: w["peak_bytes"], default=None)
        return {
            "peak_bytes": worst["peak_bytes"] if worst else None,
            "limit_bytes": worst["limit_bytes"] if worst else None,
            "per_worker": {a: w["peak_bytes"] for a, w in sorted(per_worker.items())},
            "new_workers": sorted(a for a, w in per_worker.items() if w["new_since_mark"]),
            "lost_workers": lost,
        }


def describe(peaks: dict[str, Any]) -> str:
    """One log line: the peak, against its limit, and any restart."""
    if peaks.get("peak_bytes") is None:
        return "peak worker memory: no workers"
    line = f"peak worker memory {peaks['peak_bytes'] / 2**20:.0f} MiB"
    if peaks.get("limit_bytes"):
        line += f" of a {peaks['limit_bytes'] / 2**20:.0f} MiB limit"
    changed = peaks["new_workers"] + peaks["lost_workers"]
    if changed:
        line += f"; worker(s) restarted, lost or added: {', '.join(changed)}"
    return line
