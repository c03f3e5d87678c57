"""Shared fixtures: one real Prefect server for the session, in a throw-away PREFECT_HOME.

The environment is set before Prefect is imported, so every in-process flow and every
subprocess the tests start (CLI runs, Dask worker processes) talks to that server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="prefect-home-"))
# removed at exit too: an xdist controller (or a session without the server) never tears
# the server fixture down, and left one empty folder per run
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = str(_HOME)
os.environ.pop("PREFECT_API_URL", None)
os.environ.update(
    {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DASK_LOGGING__DISTRIBUTED": "warning",
        # the server logs each request it refused for a busy database (503, retried by the
        # client): tests/test_sqlite_load.py looks for them
        "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
    }
)

import pytest  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from prefect_sklearn_dask.bridge.worker_env import apply_env  # noqa: E402
from prefect_sklearn_dask.server.process import start_server, stop_server  # noqa: E402

# Under CI=true a skip is a failure (CI installs every part a test skips without).
from tests.ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402, F401

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """A real Prefect server (the project's, `server.app`) on 127.0.0.1, SQLite in a temp home;
    stopped at the end."""
    server = start_server(port=free_port(), home=_HOME)
    apply_env({"PREFECT_API_URL": server.api_url})  # as ensure_server does for the commands
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        from prefect.logging.handlers import APILogWorker

        # send batched logs while the server is still up (APILogHandler.flush is an
        # instance method in prefect 3.9: calling it on the class raised at teardown)
        APILogWorker.drain_all(timeout=5)
        stop_server(_HOME)
        os.environ.pop("PREFECT_API_URL", None)
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture
def run_cli(prefect_api: str, tmp_path: Path):
    """Run one of the project's scripts as a user would, against the test server."""

    def run(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        env = {**os.environ, "PREFECT_API_URL": prefect_api}
        return run_script(script, *args, env=env, cwd=tmp_path, timeout=timeout)

    return run


def run_script(
    script: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess:
    """One of the project's scripts in a subprocess, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def sigint_as_a_terminal_sends_it():
    """SIGINT unblocked and handled in this thread while it starts a process: a child
    inherits the signal mask and an ignored SIGINT across exec, and a CLI that inherits
    either never sees Ctrl-C (suspected in two CI runs where a SIGINT had no effect)."""
    import signal
    import threading

    previous_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    main = threading.current_thread() is threading.main_thread()
    ignored = main and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


SIGNAL_MASKS = ("SigBlk", "SigIgn", "SigCgt")


def signal_masks(pid: int) -> dict[str, int]:
    """A process's signal masks as the kernel reports them (blocked, ignored, caught);
    signal N is bit N-1. OSError when the process is gone."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines if line.startswith(SIGNAL_MASKS))
    return {name: int(fields[name], 16) for name in SIGNAL_MASKS}


def signal_state(pid: int) -> str:
    """:func:`signal_masks` as text, for a failure message."""
    with contextlib.suppress(OSError):
        return " ".join(f"{name}: {mask:016x}" for name, mask in signal_masks(pid).items())
    return f"no /proc/{pid}/status"


@pytest.fixture
def start_cli(prefect_api: str, tmp_path: Path):
    """Start a script in the background, in its own session (so signals reach only it and
    its children); stdout/stderr go to files. Every process left is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(script: str, *args: str, name: str = "cli") -> subprocess.Popen:
        env = {**os.environ, "PREFECT_API_URL": prefect_api}
        with (
            open(tmp_path / f"{name}.out", "wb") as out,
            open(tmp_path / f"{name}.err", "wb") as err,
            sigint_as_a_terminal_sends_it(),
        ):
            process = subprocess.Popen(
                [sys.executable, str(ROOT / script), *args],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        started.append(process)
        return process

    yield start
    import signal

    for process in started:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# A 2-worker x 1-thread LocalCluster on 127.0.0.1, its dashboard on a free port.
TWO_WORKERS = {
    "n_workers": 2,
    "threads_per_worker": 1,
    "host": "127.0.0.1",
    "dashboard_address": ":0",
}


@contextlib.contextmanager
def two_workers():
    """A :data:`TWO_WORKERS` cluster and a client of it, for tests without Prefect."""
    from distributed import Client, LocalCluster

    with LocalCluster(**TWO_WORKERS) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def local_cluster(prefect_api: str):
    """A :data:`TWO_WORKERS` cluster per module, its tasks reporting to the test server."""
    from distributed import LocalCluster

    with LocalCluster(**TWO_WORKERS) as cluster:
        yield cluster


# --- pytest-xdist (`make test` runs the suite with `-n 3 --dist loadfile`) ------------------
# Every xdist worker is its own pytest session: the code above gives each its own
# PREFECT_HOME and its own server on a free port, so workers share no server, database,
# deployment, concurrency limit or artifact. `--dist loadfile` keeps each module on one
# worker, so its module-scoped fixtures (a server, a cluster, a served deployment, one
# benchmark run) start once. (`--dist loadgroup` would allow finer units, but it groups
# nothing with pytest 9.2: pytest-dev/pytest-xdist#1386.) Modules are handed out longest
# first (seconds per test in tests/durations.txt), so a slow module does not start last
# while the other workers sit idle; xdist's own reordering (by number of tests) is off.

DURATIONS = Path(__file__).with_name("durations.txt")
UNLISTED_S = 1.0


def _known_durations() -> dict[str, float]:
    known = {}
    for line in DURATIONS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            seconds, nodeid = line.split(" ", 1)
            known[nodeid] = float(seconds)
    return known


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: keep the usual order
        return
    known = _known_durations()
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    cost = {m: sum(known.get(i.nodeid, UNLISTED_S) for i in its) for m, its in modules.items()}
    items[:] = [item for m in sorted(modules, key=lambda m: -cost[m]) for item in modules[m]]
