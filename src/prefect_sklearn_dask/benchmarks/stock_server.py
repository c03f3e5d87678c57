"""A stock ``prefect server start`` for the ``@stock-server`` rows: what a drop-in user runs.

Default settings (the project's batched task-run recorder, ``server.process.THROUGHPUT_ENV``,
is not applied; server settings exported in the environment are, which is how README's
"Threads or Dask?" measures a tuned stock server), its own throw-away ``PREFECT_HOME``,
127.0.0.1 on a free port, telemetry off (offline machines). Started on first use, stopped
when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_LOCK = threading.Lock()
_STARTED: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen, home: str) -> None:
    """The whole process group: ``prefect server start`` runs the API in a uvicorn child,
    which outlived its parent when only the parent was stopped."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


def api_url(timeout: float = 180.0) -> str:
    """The stock server's API URL, starting it the first time."""
    from prefect_sklearn_dask.server.process import OFFLINE_ENV, is_healthy

    with _LOCK:
        if "url" in _STARTED:
            return _STARTED["url"]
        home = tempfile.mkdtemp(prefix="bench-stock-prefect-")
        port = _free_port()
        env = dict(os.environ)
        env.pop("PREFECT_API_URL", None)
        env.update(OFFLINE_ENV, PREFECT_HOME=home)
        prefect = Path(sys.executable).with_name("prefect")
        command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        with open(Path(home) / "server.log", "wb") as log:
            process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        atexit.register(_stop, process, home)
        url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + timeout
        while not is_healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stock prefect server did not start: see {home}/server.log")
            time.sleep(0.5)
        _STARTED["url"] = url
        return url
