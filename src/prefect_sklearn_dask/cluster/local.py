"""A local Dask cluster on this machine: worker processes bound to 127.0.0.1.

One worker process per core, one thread each: scikit-learn fits hold the GIL in
places, so processes beat threads, and ``n_jobs=1`` in every estimator keeps the
cores from being oversubscribed.

As a command it keeps one cluster alive between flow runs, so each run skips the
~4 s cluster start; ``flows/train.py --runner dask`` finds it through a state file::

    python cluster/local.py start --workers 4 --threads-per-worker 1   # Ctrl-C or `stop` ends it
    python cluster/local.py start --workers 2 --worker-memory 1500MB   # Dask's memory limit
    python cluster/local.py ensure     # start in the background unless one runs (make run)
    python cluster/local.py status
    python cluster/local.py stop
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

DEFAULT_HOST = "127.0.0.1"
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
STOP_TIMEOUT_S = 30.0
ENSURE_TIMEOUT_S = 120.0


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
    worker_memory: str | None = None,
) -> dict[str, Any]:
    """``distributed.LocalCluster`` keyword arguments, local-only by default.

    ``worker_memory`` (e.g. ``1500MB``) is each worker's Dask ``memory_limit``: past it
    the worker spills, pauses, and its nanny restarts it (default: the machine's memory
    shared out among the workers)."""
    kwargs = {
        "n_workers": workers or default_workers(),
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "host": host,
        "dashboard_address": f"{host}:{dashboard_port}",
    }
    if worker_memory:
        kwargs["memory_limit"] = check_memory(worker_memory)
    return kwargs


def check_memory(value: str) -> str:
    """A Dask memory limit (``1500MB``, ``2GiB``, ``auto``), checked: a typo is one line."""
    from dask.utils import parse_bytes

    from prefect_sklearn_dask.ml.errors import UserError

    if value == "auto":
        return value
    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise UserError(f"--worker-memory takes a size such as 1500MB or 2GiB, got {value!r}")
    return value


def port_free(host: str, port: int) -> bool:
    """True when ``port`` can be listened on at ``host`` now (0 always can).

    With SO_REUSEADDR, as Dask's scheduler binds: without it a port whose last connections
    wait out TIME_WAIT (60 s after a cluster stops) looked taken, and ``stop`` then
    ``start`` failed for a minute on a port nothing listened on.
    """
    if port == 0:
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def running_cluster(timeout: float = 3.0):
    """The recorded long-lived cluster if its process lives and its scheduler answers."""
    from prefect_sklearn_dask.cluster.remote import check_scheduler
    from prefect_sklearn_dask.cluster.state import process_alive, read_state
    from prefect_sklearn_dask.ml.errors import UserError

    state = read_state()
    if state is None or not process_alive(state.pid):
        return None
    try:
        check_scheduler(state.address, timeout=timeout)
    except UserError:
        return None
    return state


def start(args: argparse.Namespace) -> int:
    """Run a LocalCluster in the foreground until Ctrl-C, SIGTERM or ``stop``."""
    from prefect_sklearn_dask.cli import warn_if_exposed
    from prefect_sklearn_dask.cluster.state import ClusterState, clear_state, write_state
    from prefect_sklearn_dask.ml.errors import UserError

    for flag, value in (("--workers", args.workers), ("--threads-per-worker", args.threads)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    existing = running_cluster()
    if existing is not None:
        raise UserError(
            f"a cluster started by this command is already running at {existing.address} "
            f"(pid {existing.pid}); use it, or `python cluster/local.py stop` first"
        )
    for flag, port in (("--port", args.port), ("--dashboard-port", args.dashboard_port)):
        if not port_free(args.host, port):
            raise UserError(f"port {port} on {args.host} is in use; choose another with {flag}")

    warn_if_exposed(args.host, "the Dask scheduler and dashboard")
    import dask
    from distributed import LocalCluster

    from prefect_sklearn_dask.cluster.run_files import route_modules, runs_root

    kwargs = local_cluster_kwargs(
        args.workers, args.threads, args.host, args.dashboard_port, args.worker_memory
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    routes = route_modules(dask.config.get("distributed.scheduler.http.routes"))
    with (
        dask.config.set({"distributed.scheduler.http.routes": routes}),
        LocalCluster(scheduler_port=args.port, **kwargs) as cluster,
    ):
        state = ClusterState(
            address=cluster.scheduler_address,
            dashboard_url=cluster.dashboard_link,
            pid=os.getpid(),
            workers=kwargs["n_workers"],
            threads_per_worker=kwargs["threads_per_worker"],
            files_root=str(runs_root()),
        )
        path = write_state(state)
        print(
            f"Dask cluster started: {state.workers} workers x {state.threads_per_worker} "
            f"thread(s)\n  scheduler  {state.address}\n  dashboard  {state.dashboard_url}\n"
            f"  run pages  {state.dashboard_url.rsplit('/', 1)[0]}/runs/ "
            f"(the .html files under {state.files_root})\n"
            f"  state      {path}\n"
            "`python flows/train.py --runner dask` now reuses it; "
            f"stop it with Ctrl-C or `python cluster/local.py stop`",
            flush=True,
        )
        try:
            while not stop.wait(1.0):
                pass
        finally:
            clear_state(pid=os.getpid())
    print("Dask cluster stopped", flush=True)
    return 0


def ensure(args: argparse.Namespace) -> int:
    """Start ``start`` as a background process unless a cluster runs; say where it is.

    ``make run`` calls this so the dashboard it prints outlives the run; the process
    logs to ``$PREFECT_HOME/dask-cluster.log`` and ``stop`` (or ``make stop``) ends it.
    """
    import subprocess

    from prefect_sklearn_dask.cluster.state import state_path
    from prefect_sklearn_dask.ml.errors import UserError

    state = running_cluster()
    if state is not None:
        print(f"Dask cluster reused: {state.address}, dashboard {state.dashboard_url}")
        return 0
    command = [sys.executable, "-m", __name__, "start", "--host", args.host]
    command += ["--port", str(args.port), "--dashboard-port", str(args.dashboard_port)]
    command += ["--threads-per-worker", str(args.threads)]
    command += ["--workers", str(args.workers)] if args.workers else []
    command += ["--worker-memory", args.worker_memory] if args.worker_memory else []
    log = state_path().with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and the terminal's Ctrl-C
        )
    deadline = time.monotonic() + ENSURE_TIMEOUT_S
    while (state := running_cluster()) is None or state.pid != process.pid:
        if process.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            said = lines[-1].removeprefix("error: ") if lines else None
            raise UserError(said or f"the cluster did not start; see {log}")
        if time.monotonic() > deadline:
            process.terminate()
            raise UserError(f"the cluster did not start in {ENSURE_TIMEOUT_S:.0f} s; see {log}")
        time.sleep(0.3)
    print(
        f"Dask cluster started in the background (pid {state.pid}): {state.address}, "
        f"dashboard {state.dashboard_url}\n  log {log}; stop it with "
        "`python cluster/local.py stop` (or `make stop`)"
    )
    return 0


def status(args: argparse.Namespace) -> int:
    """Workers, memory, tasks and dashboard of the recorded cluster."""
    from distributed import Client

    from prefect_sklearn_dask.cluster.remote import _quiet
    from prefect_sklearn_dask.cluster.state import clear_state, process_alive, read_state

    state = read_state()
    if state is None:
        print("no long-lived Dask cluster recorded; start one with `python cluster/local.py start`")
        return 1
    if not process_alive(state.pid):
        clear_state(pid=state.pid)
        print(f"the cluster recorded at {state.address} is gone (pid {state.pid}); state cleared")
        return 1
    with _quiet(), Client(state.address, timeout=5, set_as_default=False) as client:
        info = client.scheduler_info(n_workers=-1)
        processing = client.processing()
        in_memory = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    workers = info["workers"].values()
    used = sum(w.get("metrics", {}).get("memory", 0) for w in workers)
    limit = sum(w.get("memory_limit", 0) for w in workers)
    print(
        f"Dask cluster at {state.address} (pid {state.pid})\n"
        f"  workers    {len(info['workers'])} x {state.threads_per_worker} thread(s)\n"
        f"  memory     {used / 2**30:.2f} GiB used of {limit / 2**30:.2f} GiB\n"
        f"  tasks      {sum(len(v) for v in processing.values())} processing, "
        f"{in_memory} known to the scheduler\n"
        f"  dashboard  {state.dashboard_url}"
    )
    return 0


def stop(args: argparse.Namespace) -> int:
    """SIGTERM the ``start`` process (it closes the cluster and clears the state)."""
    from prefect_sklearn_dask.cluster.state import clear_state, process_alive, read_state

    state = read_state()
    if state is None or not process_alive(state.pid):
        if state is not None:
            clear_state(pid=state.pid)
        print("no long-lived Dask cluster running")
        return 0
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while process_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if process_alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    clear_state(pid=state.pid)
    print(f"Dask cluster at {state.address} stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python cluster/local.py",
        description="A long-lived local Dask cluster (127.0.0.1) that flow runs reuse.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    begin = sub.add_parser("start", help="start a cluster and keep it running (foreground)")
    background = sub.add_parser(
        "ensure", help="start a cluster in the background unless one runs (make run)"
    )
    for command in (begin, background):
        command.add_argument("--workers", type=int, help="worker processes (default: one per core)")
        command.add_argument(
            "--threads-per-worker", dest="threads", type=int, default=1, help="(default: 1)"
        )
        command.add_argument(
            "--host", default=DEFAULT_HOST, help="interface (default: %(default)s)"
        )
        command.add_argument("--port", type=int, default=SCHEDULER_PORT, help="scheduler port")
        command.add_argument("--dashboard-port", type=int, default=DASHBOARD_PORT)
        command.add_argument(
            "--worker-memory",
            metavar="SIZE",
            help="memory limit per worker, e.g. 1500MB (default: the machine's, shared out)",
        )
    sub.add_parser("status", help="workers, memory, tasks and dashboard of the running cluster")
    sub.add_parser("stop", help="stop the running cluster")
    args = parser.parse_args(argv)
    actions = {"start": start, "ensure": ensure, "status": status, "stop": stop}
    return actions[args.action](args)


def cli() -> None:
    """The console script (and ``cluster/local.py``): quiet libraries, one-line errors."""
    from prefect_sklearn_dask.cli import quiet_environment, run_cli

    quiet_environment()
    sys.exit(run_cli(main))


if __name__ == "__main__":  # `ensure` runs `start` as `python -m` (the guard LocalCluster needs)
    cli()
