"""One persistent local Prefect server for the flow, its tasks and every Dask worker.

Without ``PREFECT_API_URL`` each Prefect process starts a temporary server of its
own: every Dask worker process then records its task runs where nobody looks (and
pays ~6 s to start it). So the project starts (or reuses) one SQLite-backed server
on 127.0.0.1 and points every process at it.

    python flows/server.py start      # start or reuse; prints the UI address
    python flows/server.py status
    python flows/server.py stop
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from prefect_sklearn_dask.cli import warn_if_exposed
from prefect_sklearn_dask.masking import mask
from prefect_sklearn_dask.ml.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
START_TIMEOUT_S = 120.0
OFFLINE_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
# Task runs reach the server as state-change events (three per task run). By default its
# task-run recorder writes each one in its own transaction; on SQLite that made the
# server the busiest process of a Dask run (10-20 ms of CPU per task run, more than the
# task itself). Batched writes cut its CPU per task run by ~30% in side-by-side runs
# (benchmarks/README.md); records appear at most FLUSH_INTERVAL seconds later.
# Values set in the environment win.
THROUGHPUT_ENV = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "2",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "2",
}


@dataclass(frozen=True)
class Server:
    """Where the API is and whether this call started it."""

    api_url: str
    started: bool

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def prefect_home() -> Path:
    """``$PREFECT_HOME`` (default ``~/.prefect``): the server's database, log and pid live there."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser()


def configured_api_url() -> str | None:
    """The API URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url).rstrip("/") if url else None


def is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when a Prefect API answers its health check at ``api_url``."""
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.strip() == "true"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """A file lock, so two commands started together start one server, not two."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_sqlite_json1() -> None:
    """Prefect's SQLite schema needs JSON1 ("no such table: json_each" otherwise): say so first."""
    import sqlite3

    try:
        sqlite3.connect(":memory:").execute("SELECT * FROM json_each('[1]')").fetchall()
    except sqlite3.OperationalError:
        raise UserError(
            f"this Python's SQLite ({sqlite3.sqlite_version}) lacks the JSON1 extension the "
            "Prefect server needs; use a Python built against SQLite >= 3.38, or point "
            "PREFECT_API_DATABASE_CONNECTION_URL at PostgreSQL"
        ) from None


def server_env(home: Path) -> dict[str, str]:
    """The server process's environment: throughput defaults under the user's, offline."""
    env = {**THROUGHPUT_ENV, **os.environ, **OFFLINE_ENV, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    return env


def start_server(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, home: Path | None = None
) -> Server:
    """Reuse a healthy server at host:port or start one in the background and wait for it."""
    home = home or prefect_home()
    api_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/api"
    with _exclusive(home / "server.lock"):
        if is_healthy(api_url):
            return Server(api_url, started=False)
        if port_in_use(host, port):
            raise UserError(
                f"port {port} on {host} is in use by something that is not a Prefect server; "
                "free it or choose another with --server-port"
            )
        if "PREFECT_API_DATABASE_CONNECTION_URL" not in os.environ:
            check_sqlite_json1()
        warn_if_exposed(host, "the Prefect server")
        log_path = home / "server.log"
        env = server_env(home)
        # The UI asks /ui-settings where its API is: without this, 127.0.0.1:4200 whatever
        # --port says, so a UI on another port showed the default server's data (or none).
        env.setdefault("PREFECT_SERVER_UI_API_URL", api_url)
        prefect_cli = Path(sys.executable).with_name("prefect")
        command = [str(prefect_cli), "server", "start", "--host", host, "--port", str(port)]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (home / "server.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not is_healthy(api_url):
            if process.poll() is not None or time.monotonic() > deadline:
                _terminate(process.pid)
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise UserError(
                    f"the Prefect server did not start on {host}:{port} "
                    f"({mask(tail[0]) if tail else 'no output'}); see {log_path}"
                )
            time.sleep(0.5)
        return Server(api_url, started=True)


def database_description() -> str:
    """Which database the server uses, with any password masked."""
    url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    return mask(url) if url else f"SQLite in {prefect_home()}"


def ensure_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Server:
    """The API every process of a run must use: the configured one, or the project's own.

    The URL is exported to ``os.environ`` so that worker processes spawned later
    (a ``LocalCluster``'s nannies) inherit it.
    """
    configured = configured_api_url()
    if configured:
        if not is_healthy(configured):
            raise UserError(
                f"the Prefect API at {configured} (PREFECT_API_URL) does not answer; "
                "start that server or unset PREFECT_API_URL to use the project's own"
            )
        server = Server(configured, started=False)
    else:
        server = start_server(host, port)
    os.environ["PREFECT_API_URL"] = server.api_url
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    return server


def _terminate(pid: int, grace_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)


def stop_server(home: Path | None = None) -> bool:
    """Stop the server this project started (by its pid file); False if none was running."""
    pid_file = (home or prefect_home()) / "server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip())
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    _terminate(pid)
    pid_file.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python flows/server.py",
        description="Start, inspect or stop the project's persistent local Prefect server "
        "(SQLite in $PREFECT_HOME, UI included).",
    )
    parser.add_argument("action", choices=("start", "status", "stop"))
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            server = start_server(args.host, args.port)
            verb = "started" if server.started else "already running"
            print(f"Prefect server {verb}: UI {server.ui_url}  API {server.api_url}")
            print(f"database: {database_description()}")
            print(f"use it from another shell with: export PREFECT_API_URL={server.api_url}")
        elif args.action == "status":
            api_url = f"http://{args.host}:{args.port}/api"
            healthy = is_healthy(api_url)
            print(f"Prefect server at {api_url}: {'up' if healthy else 'down'}")
            return 0 if healthy else 1
        else:
            print(
                "Prefect server stopped" if stop_server() else "no project Prefect server running"
            )
    except UserError as exc:
        print(f"error: {mask(exc)}", file=sys.stderr)
        return 2
    return 0


def cli() -> None:
    """The console script (and ``flows/*.py``): exit with ``main``'s code."""
    sys.exit(main())
