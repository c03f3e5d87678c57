"""What the Prefect server already listening on a port is, read from that server.

``server.py start`` beside a running server must compare the request with the server
that runs, not with the asking shell's environment: its bind address comes from the
listening socket, http or https and authentication from asking it, and its database
from the environment its process was started with (``/proc/<pid>/environ`` through
psutil; unknown for another user's process).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from prefect_sklearn_dask.masking import mask

# Prefect reads the first of these that is set (its settings' alias order).
DATABASE_ENV = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


@dataclass(frozen=True)
class Database:
    """A server's database URL; printed masked, compared whole."""

    url: str
    home: Path

    @property
    def is_default(self) -> bool:
        return self.url == default_sqlite_url(self.home)

    def __str__(self) -> str:
        return f"SQLite in {self.home}" if self.is_default else mask(self.url)


def default_sqlite_url(home: Path) -> str:
    """Prefect's default database: ``prefect.db`` in ``$PREFECT_HOME``."""
    return f"sqlite+aiosqlite:///{home}/prefect.db"


def database_in(env: Mapping[str, str]) -> Database:
    """The database a Prefect server started with ``env`` uses (profiles aside)."""
    home_text = env.get("PREFECT_HOME") or str(Path(env.get("HOME", "~")) / ".prefect")
    home = Path(home_text).expanduser().resolve()
    url = next((env[key] for key in DATABASE_ENV if env.get(key)), None)
    return Database(url or default_sqlite_url(home), home)


@dataclass(frozen=True)
class Running:
    """A Prefect server that answers on a port of this machine."""

    api_url: str
    tls: bool
    authenticated: bool
    hosts: frozenset[str]  # the addresses its sockets are bound to (empty: unknown)
    pid: int | None  # the listening process (None: another user's, not visible)
    database: Database | None  # None: unknown

    @property
    def host(self) -> str:
        return ", ".join(sorted(self.hosts)) or "an unknown address"


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """A Prefect API answers its health check at ``api_url`` (certificate not checked:
    whether the server is there is the question, not whom a client should trust)."""
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout, verify=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.strip() == "true"


def requires_auth(api_url: str) -> bool:
    """True when the server at ``api_url`` answers 401 to a request without credentials."""
    try:
        response = httpx.get(f"{api_url}/admin/version", timeout=2.0, verify=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 401


def listeners(port: int) -> tuple[frozenset[str], int | None]:
    """The addresses bound to ``port`` for listening, and the listening process if visible."""
    hosts, pids = set(), set()
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                hosts.add(conn.laddr.ip)
                if conn.pid:
                    pids.add(conn.pid)
    return frozenset(hosts), (pids.pop() if len(pids) == 1 else None)


def _database_of(pid: int | None) -> Database | None:
    if pid is None:
        return None
    try:
        return database_in(psutil.Process(pid).environ())
    except psutil.Error:
        return None


def running_server(local_host: str, port: int) -> Running | None:
    """The Prefect server answering at ``local_host:port`` over http or https, or None."""
    for scheme in ("http", "https"):
        api_url = f"{scheme}://{local_host}:{port}/api"
        if healthy(api_url):
            hosts, pid = listeners(port)
            return Running(
                api_url=api_url,
                tls=scheme == "https",
                authenticated=requires_auth(api_url),
                hosts=hosts,
                pid=pid,
                database=_database_of(pid),
            )
    return None


def started_from(home: Path, running: Running) -> bool:
    """True when the pid file in ``home`` names the running server's process group
    (the project starts each server in a session of its own): ``stop`` there stops it."""
    if running.pid is None:
        return False
    try:
        recorded = int((home / "server.pid").read_text().strip())
        return os.getpgid(running.pid) == recorded
    except (OSError, ValueError):
        return False
