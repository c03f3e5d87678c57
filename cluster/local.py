"""A local Dask cluster on this machine: worker processes bound to 127.0.0.1.

One worker process per core, one thread each: scikit-learn fits hold the GIL in
places, so processes beat threads, and ``n_jobs=1`` in every estimator keeps the
cores from being oversubscribed.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DASHBOARD_PORT = 8787


def default_workers() -> int:
    """One worker per available core."""
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def local_cluster_kwargs(
    workers: int | None = None,
    threads_per_worker: int = 1,
    host: str = DEFAULT_HOST,
    dashboard_port: int = DASHBOARD_PORT,
) -> dict[str, Any]:
    """``distributed.LocalCluster`` keyword arguments, local-only by default."""
    return {
        "n_workers": workers or default_workers(),
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "host": host,
        "dashboard_address": f"{host}:{dashboard_port}",
    }
