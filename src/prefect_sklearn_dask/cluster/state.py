"""Where a long-lived local cluster tells later runs its address and dashboard.

``python cluster/local.py start`` writes a small JSON file under ``$PREFECT_HOME``
(next to the Prefect server's pid file), so ``flows/train.py --runner dask`` can find
and reuse the running cluster instead of paying the ~4 s start of a new one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_NAME = "dask-cluster.json"


@dataclass(frozen=True)
class ClusterState:
    """What ``start`` records about the cluster it runs."""

    address: str
    dashboard_url: str | None
    pid: int
    workers: int
    threads_per_worker: int
    files_root: str | None = None  # runs' HTML served under the dashboard (run_files.py)


def state_path() -> Path:
    """``$PREFECT_HOME/dask-cluster.json`` (``~/.prefect`` when PREFECT_HOME is unset)."""
    home = os.environ.get("PREFECT_HOME") or "~/.prefect"
    return Path(home).expanduser() / STATE_NAME


def write_state(state: ClusterState, path: Path | None = None) -> Path:
    path = path or state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)
    return path


def read_state(path: Path | None = None) -> ClusterState | None:
    """The recorded cluster, or None when there is none or the file is unreadable."""
    path = path or state_path()
    try:
        return ClusterState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def clear_state(path: Path | None = None, pid: int | None = None) -> None:
    """Remove the file (only if it still names ``pid``, when given)."""
    path = path or state_path()
    state = read_state(path)
    if pid is None or (state is not None and state.pid == pid):
        path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
