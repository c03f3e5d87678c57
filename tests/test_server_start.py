"""``server.py start`` beside a running server says what is: a request the running server
does not meet is one ``error:`` line naming the difference and the way out, exit 2.

One real loopback server (``flows/server.py start``, SQLite in its own home) for the module;
each case then asks for something else on its port, as a user would after ``make run``.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from prefect_sklearn_dask.server import auth
from prefect_sklearn_dask.server.running import listeners, running_server
from tests.certs import make_tls
from tests.conftest import free_port, run_script

PASSWORD = "s3cret-db-pw"
CLIENT_KEYS = ("PREFECT_API_URL", auth.SERVER_ENV, "PREFECT_API_DATABASE_CONNECTION_URL")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_KEYS}
    return {**env, "PREFECT_HOME": str(home), **extra}


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("running")
    home, port = tmp / "home", free_port()
    started = run_script("flows/server.py", "start", "--port", str(port), env=_env(home), cwd=tmp)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield SimpleNamespace(home=home, port=port, tmp=tmp)
    finally:
        run_script("flows/server.py", "stop", env=_env(home), cwd=tmp, timeout=60)


def _start(server, *args: str, home: Path | None = None, **env: str):
    return run_script(
        "flows/server.py",
        *("start", "--port", str(server.port), *args),
        env=_env(home or server.home, **env),
        cwd=server.tmp,
        timeout=120,
    )


def _one_error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "already running" not in result.stdout
    return lines[0]


def _flags_exist(line: str) -> None:
    """Every ``--flag`` a message names is one ``server.py`` takes."""
    helped = run_script("flows/server.py", "--help", env=dict(os.environ), cwd=Path.cwd()).stdout
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", line):
        assert re.search(rf"(?<![\w-]){flag}\b", helped), (flag, line)


def test_a_wide_start_beside_a_loopback_server_is_refused(loopback):
    line = _one_error_line(_start(loopback, "--host", "0.0.0.0"))
    assert f"port {loopback.port}" in line
    assert "it listens on 127.0.0.1, this start asks for 0.0.0.0" in line
    assert "it requires no authentication, this start asks for it" in line
    assert "make stop" in line and "python flows/server.py stop" in line
    _flags_exist(line)
    assert listeners(loopback.port)[0] == {"127.0.0.1"}  # nothing wide was started


def test_a_tls_start_beside_an_http_server_is_refused(loopback):
    certs = make_tls(loopback.tmp / "certs")
    line = _one_error_line(_start(loopback, "--tls-cert", certs["cert"], "--tls-key", certs["key"]))
    assert "it serves http, this start asks for https" in line
    assert "not a Prefect server" not in line
    _flags_exist(line)


def test_an_authenticated_start_beside_an_open_server_is_refused(loopback):
    line = _one_error_line(_start(loopback, **{auth.SERVER_ENV: "a-long-auth-string"}))
    assert "it requires no authentication, this start asks for it" in line
    assert "a-long-auth-string" not in line


def test_another_database_beside_the_running_one_is_refused_masked(loopback):
    url = f"postgresql+asyncpg://prefect:{PASSWORD}@127.0.0.1:5432/prefect"
    result = _start(loopback, PREFECT_API_DATABASE_CONNECTION_URL=url)
    line = _one_error_line(result)
    home = loopback.home.resolve()
    assert f"it uses the database SQLite in {home}" in line
    assert "this start asks for postgresql+asyncpg://prefect:***@127.0.0.1:5432/prefect" in line
    assert PASSWORD not in result.stdout + result.stderr


def test_another_home_is_told_where_the_running_server_came_from(loopback, tmp_path):
    line = _one_error_line(_start(loopback, home=tmp_path / "other-home"))
    home = loopback.home.resolve()
    assert f"it uses the database SQLite in {home}" in line
    assert f"PREFECT_HOME={home} python flows/server.py stop" in line


def test_the_same_request_reuses_it_and_reports_its_database(loopback):
    result = _start(loopback)
    assert result.returncode == 0, result.stderr
    assert "Prefect server already running" in result.stdout
    assert f"database: SQLite in {loopback.home.resolve()}\n" in result.stdout


def test_the_database_is_read_from_the_running_server_not_this_environment(loopback, monkeypatch):
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://u:p@h/db")
    monkeypatch.setenv("PREFECT_HOME", str(loopback.tmp / "elsewhere"))
    running = running_server("127.0.0.1", loopback.port)
    assert running and not running.tls and not running.authenticated
    assert str(running.database) == f"SQLite in {loopback.home.resolve()}"
    assert running.hosts == {"127.0.0.1"}


def test_a_port_held_by_something_else_names_the_callers_own_flag(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        env = _env(tmp_path / "home")
        started = run_script("flows/server.py", "start", "--port", port, env=env, cwd=tmp_path)
        line = _one_error_line(started)
        assert "not a Prefect server" in line and re.search(r"with --port$", line)
        _flags_exist(line)
        trained = run_script(
            "flows/train.py",
            *("--runner", "threads", "--dataset", "iris", "--models", "nb"),
            *("--server-port", port),
            env=env,
            cwd=tmp_path,
        )
        assert trained.returncode == 2, trained.stderr
        assert "choose another with --server-port" in trained.stderr
