"""Real ``dask scheduler`` / ``dask worker`` processes on 127.0.0.1, started as a user would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT, free_port

DASK = str(Path(sys.executable).with_name("dask"))
PROJECT_ENV = ("PYTHONPATH",)
# A worker as on another machine: no Prefect setting from this shell (PREFECT_API_URL,
# PREFECT_HOME and every other PREFECT_* variable), and a Prefect home of its own.
DROPPED_PREFIX = "PREFECT_"


def worker_env(tmp: Path, keep_project: bool = True) -> dict[str, str]:
    """A worker's environment; with the project, the repo root is importable too, so a
    ``--preload tests.…`` module (test-only models) loads on a clean clone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_PREFIX)}
    env["PREFECT_HOME"] = str(tmp / "worker-prefect-home")
    if keep_project:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    else:
        for key in PROJECT_ENV:
            env.pop(key, None)
    return env


def _spawn(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as handle:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def wait_for_workers(address: str, n: int, security=None, timeout: float = 60) -> None:
    from distributed import Client

    deadline = time.monotonic() + timeout
    with Client(address, timeout=timeout, set_as_default=False, security=security) as client:
        client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))


# A `dask worker` that cannot import this project although it is installed here:
# the editable-install finder and the project folders are taken off the import path.
BARE_WORKER = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                    and "editable" not in getattr(f, "__name__", "").lower()]
import os
PACKAGE = "/prefect_sklearn_dask/__init__.py"
sys.path[:] = [p for p in sys.path if not (p and os.path.isfile(p + PACKAGE))]
from distributed.cli.dask_worker import main
sys.argv[0] = "dask worker"
main()
"""


@contextlib.contextmanager
def dask_cluster(
    tmp: Path,
    n_workers: int = 1,
    tls: dict[str, str] | None = None,
    bare: bool = False,
    worker_args: tuple[str, ...] = (),
    scheduler_env: dict[str, str] | None = None,
    procs: dict[str, object] | None = None,
) -> Iterator[str]:
    """A scheduler and ``n_workers`` single-thread workers; yields the scheduler address.

    ``worker_args`` go to every ``dask worker`` (``--memory-limit``, ``--preload``),
    ``scheduler_env`` into the scheduler's environment (Dask config such as
    ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES``); ``procs``, if given, receives the
    ``scheduler`` and ``workers`` processes, for tests that kill them."""
    port = free_port()
    protocol = "tls" if tls else "tcp"
    tls_args = []
    if tls:
        tls_args = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
    env = worker_env(tmp)
    scheduler = _spawn(
        [DASK, "scheduler", "--protocol", protocol, "--host", "127.0.0.1", "--port", str(port)]
        + ["--dashboard-address", f"127.0.0.1:{free_port()}", *tls_args],
        {**env, **(scheduler_env or {})},
        tmp,
        tmp / "scheduler.log",
    )
    address = f"{protocol}://127.0.0.1:{port}"
    common = [address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", *tls_args]
    common += list(worker_args)
    if bare:
        command = [sys.executable, "-c", BARE_WORKER, *common, "--no-nanny"]
    else:
        command = [DASK, "worker", *common]
    workers = [
        _spawn(command, worker_env(tmp, keep_project=not bare), tmp, tmp / f"worker{i}.log")
        for i in range(n_workers)
    ]
    if procs is not None:
        procs.update(scheduler=scheduler, workers=workers)
    try:
        security = None
        if tls:
            from distributed import Security

            security = Security(
                tls_ca_file=tls["ca"],
                tls_client_cert=tls["cert"],
                tls_client_key=tls["key"],
                require_encryption=True,
            )
        wait_for_workers(address, n_workers, security)
        yield address
    finally:
        for process in [*workers, scheduler]:
            _stop(process)
