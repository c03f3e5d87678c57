"""The Prefect server on PostgreSQL (asyncpg), chosen by one connection URL.

Runs against a real PostgreSQL started for the test (``initdb`` + ``pg_ctl`` on
127.0.0.1); skipped, with the reason, where PostgreSQL is not installed (a failure under
CI=true, where .ci/run installs it: tests/ci_skips.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from prefect_sklearn_dask.flow.train_flow import train_flow
from prefect_sklearn_dask.server.process import start_server, stop_server
from tests.conftest import free_port


def postgres_bin() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None
    )
    return Path(found).resolve().parent if found else None


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def postgres_url():
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql to run this test)")
    # Not under pytest's root-only tmp folder: the `postgres` user must reach it.
    data = Path(tempfile.mkdtemp(prefix="pgdata-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()

    def run(*cmd: str) -> None:
        command = as_postgres([str(bin_dir / cmd[0]), *cmd[1:]])
        subprocess.run(command, check=True, capture_output=True, text=True)

    run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust")
    run(
        "pg_ctl",
        "-D",
        str(data),
        "-l",
        str(data / "log"),
        "-w",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {data}",
        "start",
    )
    try:
        psql = [
            str(bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        subprocess.run(
            [*psql, "-c", "CREATE USER prefect PASSWORD 's3cret-pw'"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*psql, "-c", "CREATE DATABASE prefect OWNER prefect"], check=True, capture_output=True
        )
        yield f"postgresql+asyncpg://prefect:s3cret-pw@127.0.0.1:{port}/prefect", psql
    finally:
        run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_server_on_postgresql_records_flow_runs(postgres_url, monkeypatch, tmp_path):
    url, psql = postgres_url
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", url)
    home = tmp_path / "home"
    server = start_server(port=free_port(), home=home)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            summary = train_flow(
                dataset="iris", models=["nb"], runner="threads", storage=str(tmp_path / "s")
            )
    finally:
        stop_server(home)
    rows = subprocess.run(
        [
            *psql,
            "-d",
            "prefect",
            "-tA",
            "-c",
            f"SELECT count(*) FROM flow_run WHERE id = '{summary['flow_run_id']}'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert rows == "1"
    assert not (home / "prefect.db").exists()  # nothing went to SQLite
