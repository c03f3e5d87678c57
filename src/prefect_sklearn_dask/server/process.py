"""One persistent local Prefect server for the flow, its tasks and every Dask worker.

Without ``PREFECT_API_URL`` each Prefect process starts a temporary server of its
own: every Dask worker process then records its task runs where nobody looks (and
pays ~6 s to start it). So the project starts (or reuses) one SQLite-backed server
on 127.0.0.1 and points every process at it.

    python flows/server.py start      # start or reuse; prints the UI address
    python flows/server.py start --host 0.0.0.0 --tls-cert server.pem --tls-key server.key
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

from prefect_sklearn_dask.cli import LOOPBACK, warn_if_exposed
from prefect_sklearn_dask.masking import mask
from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.server import app, auth, tls
from prefect_sklearn_dask.server.access import require_api_access
from prefect_sklearn_dask.server.running import (
    Database,
    Running,
    database_in,
    running_server,
    started_from,
)

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
    authenticated: bool = False
    database: Database | None = None  # None: not known (a server the project did not start)

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


def is_healthy(api_url: str, timeout: float = 2.0, verify: bool | None = None) -> bool:
    """True when a Prefect API answers its health check at ``api_url``.

    https is checked with Prefect's own client trust (``PREFECT_API_SSL_CERT_FILE``);
    ``verify=False`` only probes that a server we started is up.
    """
    if verify is None:
        verify = tls.client_verify() if api_url.startswith("https:") else True
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout, verify=verify)
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


def _exposure(authenticated: bool, encrypted: bool) -> str | None:
    """What protects a wide server, for the warning (None: nothing)."""
    if authenticated and encrypted:
        return "with authentication and TLS"
    if authenticated:
        return (
            "with authentication but without TLS: the auth string and all data cross "
            "the network in clear text (add --tls-cert/--tls-key)"
        )
    if encrypted:
        return f"with TLS but WITHOUT authentication ({auth.INSECURE_FLAG})"
    return None


def server_command(host: str, port: int, pair: tuple[str, str] | None) -> list[str]:
    """Prefect's server app as :mod:`.app` serves it (https with ``pair``)."""
    command = [sys.executable, "-m", app.__name__, "--host", host, "--port", str(port)]
    if pair is None:
        return command
    cert, key = pair
    return command + ["--tls-cert", cert, "--tls-key", key]


def start_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    home: Path | None = None,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    insecure_no_auth: bool = False,
    strict: bool = True,
    port_flag: str = "--port",
) -> Server:
    """Reuse the server at host:port if it is the one asked for, or start one and wait for it.

    Beyond loopback it requires an auth string (:mod:`.auth`) unless ``insecure_no_auth``;
    with ``tls_cert``/``tls_key`` it serves https (:mod:`.tls`). A running server that
    differs from the request (host, TLS, authentication, database) is a :class:`UserError`
    naming the difference and the way out; ``strict=False`` (a flow that needs *a* local
    server, any) overlooks all but TLS. ``port_flag``: the caller's port option, for messages.
    """
    home = (home or prefect_home()).expanduser().resolve()
    pair = tls.check_pair(tls_cert, tls_key)
    scheme = "https" if pair else "http"
    local = "127.0.0.1" if host == "0.0.0.0" else host  # where this machine reaches it
    api_url = f"{scheme}://{local}:{port}/api"
    wanted = database_in(server_env(home))
    with _exclusive(home / "server.lock"):
        running = running_server(local, port)
        if running:
            wants_auth = bool(os.environ.get(auth.SERVER_ENV)) or not (
                host in LOOPBACK or insecure_no_auth
            )
            differences = _differences(running, host, bool(pair), wants_auth, wanted)
            if not strict:
                differences = [d for d in differences if d.startswith("it serves")]
            if differences:
                raise UserError(
                    f"a Prefect server already runs on port {port} and is not the one asked "
                    f"for: {'; '.join(differences)}; {_way_out(home, running, port_flag)}"
                )
            return Server(running.api_url, False, running.authenticated, running.database)
        if port_in_use(local, port):
            raise UserError(
                f"port {port} on {host} is in use by something that is not a Prefect server; "
                f"free it or choose another with {port_flag}"
            )
        auth_string = auth.server_auth_string(host, home, insecure_no_auth)
        if wanted.is_default:
            check_sqlite_json1()
        warn_if_exposed(host, "the Prefect server", _exposure(bool(auth_string), bool(pair)))
        log_path = home / "server.log"
        env = server_env(home)
        env.pop(auth.SERVER_ENV, None)
        if auth_string:
            env[auth.SERVER_ENV] = auth_string
        # The UI asks its server where the API is; unset, that is 127.0.0.1:4200 whatever
        # port or scheme this server uses, and a UI on another port showed another server's runs.
        if not ({"PREFECT_UI_API_URL", "PREFECT_SERVER_UI_API_URL"} & set(env)):
            env["PREFECT_SERVER_UI_API_URL"] = api_url
        command = server_command(host, port, pair)
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
        while not is_healthy(api_url, verify=False):
            if process.poll() is not None or time.monotonic() > deadline:
                _terminate(process.pid)
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise UserError(
                    f"the Prefect server did not start on {host}:{port} "
                    f"({mask(tail[0]) if tail else 'no output'}); see {log_path}"
                )
            time.sleep(0.5)
        return Server(api_url, started=True, authenticated=bool(auth_string), database=wanted)


def _bind_address(host: str) -> str:
    """``host`` as a listening socket shows it (``localhost`` -> 127.0.0.1)."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def _differences(
    running: Running, host: str, tls_on: bool, wants_auth: bool, wanted: Database
) -> list[str]:
    """How the running server differs from the request, in words (TLS ones say "it serves")."""
    found = []
    if running.tls != tls_on:
        found.append(
            "it serves https, this start asks for http (no --tls-cert)"
            if running.tls
            else "it serves http, this start asks for https (--tls-cert/--tls-key)"
        )
    if running.hosts and _bind_address(host) not in running.hosts:
        found.append(f"it listens on {running.host}, this start asks for {host}")
    if running.authenticated != wants_auth:
        found.append(
            "it requires authentication, this start asks for none"
            if running.authenticated
            else "it requires no authentication, this start asks for it "
            f"(a host beyond loopback without {auth.INSECURE_FLAG}, or {auth.SERVER_ENV} set)"
        )
    if running.database and running.database.url != wanted.url:
        found.append(f"it uses the database {running.database}, this start asks for {wanted}")
    return found


def _way_out(home: Path, running: Running, port_flag: str) -> str:
    """How to make room: stop it from here when this home started it, else say whose it is."""
    if started_from(home, running):
        return (
            "stop it first (make stop, or python flows/server.py stop) "
            f"or choose another {port_flag}"
        )
    if running.pid and running.database:
        return (
            f"it was not started from this PREFECT_HOME: stop it with PREFECT_HOME="
            f"{running.database.home} python flows/server.py stop (pid {running.pid}), "
            f"or choose another {port_flag}"
        )
    return (
        "it was not started from this PREFECT_HOME and its process is not visible here: "
        f"stop it where it was started, or choose another {port_flag}"
    )


def ensure_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Server:
    """The API every process of a run must use: the configured one, or the project's own.

    The URL is exported to ``os.environ`` so that worker processes spawned later
    (a ``LocalCluster``'s nannies) inherit it, and an imported Prefect re-reads its
    global settings: a thread that did not inherit the caller's settings context reads
    those, and without the URL there Prefect's ``ProcessPoolTaskRunner`` message thread
    started a temporary server of its own (a ``uvicorn`` left running after the process).
    """
    from prefect_sklearn_dask.bridge.worker_env import apply_env

    configured = configured_api_url()
    if configured:
        require_api_access(configured)
        if configured.startswith("https:"):
            tls.share_ca_with_workers()
        server = Server(configured, started=False)
    else:
        server = start_server(host, port, strict=False, port_flag="--server-port")
    offline = {key: value for key, value in OFFLINE_ENV.items() if key not in os.environ}
    apply_env({"PREFECT_API_URL": server.api_url, **offline})
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
    parser.add_argument("--tls-cert", metavar="PEM", help="serve https with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    parser.add_argument(
        auth.INSECURE_FLAG,
        action="store_true",
        help="beyond loopback, start WITHOUT authentication: anyone who reaches the port "
        "can read every run and start flow runs (default: an auth string from "
        f"{auth.SERVER_ENV} or generated and stored in $PREFECT_HOME/{auth.AUTH_FILE})",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            server = start_server(
                args.host,
                args.port,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                insecure_no_auth=args.insecure_no_auth,
            )
            verb = "started" if server.started else "already running"
            print(f"Prefect server {verb}: UI {server.ui_url}  API {server.api_url}")
            print(f"database: {server.database or 'unknown (its process is not visible here)'}")
            print(f"use it from another shell with: export PREFECT_API_URL={server.api_url}")
            if server.authenticated:
                print(auth.client_hint(prefect_home()))
            if args.tls_cert:
                print(
                    "clients trust it with: export PREFECT_API_SSL_CERT_FILE=<the CA file "
                    f"that signed {args.tls_cert}>"
                )
        elif args.action == "status":
            urls = [f"{scheme}://{args.host}:{args.port}/api" for scheme in ("http", "https")]
            up = [url for url in urls if is_healthy(url, verify=False)]
            api_url, healthy = (up or urls)[0], bool(up)
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
