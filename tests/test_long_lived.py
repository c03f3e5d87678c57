"""``python cluster/local.py start|status|stop``: one cluster that flow runs find and reuse."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from prefect_sklearn_dask.cluster.state import read_state, state_path
from tests.conftest import ROOT, free_port

LOCAL = str(ROOT / "cluster" / "local.py")


def test_start_on_a_port_in_use_is_one_line_exit_2_fast(run_cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = run_cli("cluster/local.py", "start", "--port", str(port), timeout=30)
    assert time.monotonic() - started < 15
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: port {port} on 127.0.0.1 is in use; choose another with --port"]


@pytest.fixture(scope="module")
def long_lived(prefect_api, tmp_path_factory):
    """A cluster started as a user would, in the background; stopped at the end."""
    log = tmp_path_factory.mktemp("long-lived") / "start.log"
    command = [sys.executable, LOCAL, "start", "--workers", "2", "--port", str(free_port())]
    command += ["--dashboard-port", str(free_port())]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while (state := read_state()) is None or state.pid != process.pid:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield process, state, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        state_path().unlink(missing_ok=True)


def test_start_prints_address_and_dashboard(long_lived):
    _, state, log = long_lived
    text = log.read_text()
    assert state.address.startswith("tcp://127.0.0.1:") and state.address in text
    assert state.dashboard_url.startswith("http://127.0.0.1:") and state.dashboard_url in text


def test_status_lists_workers_memory_tasks_and_dashboard(run_cli, long_lived):
    _, state, _ = long_lived
    result = run_cli("cluster/local.py", "status")
    assert result.returncode == 0, result.stderr
    assert "workers    2 x 1 thread(s)" in result.stdout
    assert "memory" in result.stdout and "tasks" in result.stdout
    assert state.dashboard_url in result.stdout


def test_a_second_start_is_refused(run_cli, long_lived):
    result = run_cli("cluster/local.py", "start", "--port", "0", timeout=60)
    assert result.returncode == 2
    assert "already running" in result.stderr and "Traceback" not in result.stderr


def test_runner_dask_reuses_it_and_says_so(run_cli, long_lived, tmp_path):
    _, state, _ = long_lived
    result = run_cli(
        "flows/train.py",
        *("--runner", "dask", "--dataset", "iris", "--models", "nb,logreg"),
        *("--storage", str(tmp_path / "s"), "--json"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"reusing the long-lived Dask cluster at {state.address}" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["dashboard_url"] == state.dashboard_url
    assert summary["timings"]["runner_start_seconds"] < 2.0
    assert summary["dask_cluster"] == f"scheduler at {state.address}"


def test_stop_ends_it_and_clears_the_state(run_cli, long_lived):
    process, state, _ = long_lived
    result = run_cli("cluster/local.py", "stop", timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"Dask cluster at {state.address} stopped" in result.stdout
    assert process.wait(timeout=30) == 0
    assert read_state() is None
    status = run_cli("cluster/local.py", "status")
    assert status.returncode == 1 and "no long-lived Dask cluster" in status.stdout
