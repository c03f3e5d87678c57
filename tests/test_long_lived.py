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


@pytest.mark.parametrize("command", ["start", "ensure"])
def test_start_on_a_port_in_use_is_one_line_exit_2_fast(run_cli, command):
    """``ensure`` (make run's step) passes on the error of the ``start`` it runs, as is."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = run_cli("cluster/local.py", command, "--port", str(port), timeout=30)
    assert time.monotonic() - started < 15
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: port {port} on 127.0.0.1 is in use; choose another with --port"]


def test_a_port_its_last_cluster_just_left_is_free():
    """A port whose last connections wait out TIME_WAIT (for 60 s after a cluster stops)
    can be listened on again (Dask sets SO_REUSEADDR): `stop` then `start` must work."""
    from prefect_sklearn_dask.cluster.local import port_free

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the side that closes first keeps the port in TIME_WAIT
        client.close()
        assert not port_free("127.0.0.1", port)  # still listening
    assert port_free("127.0.0.1", port)


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
    """The run connects to the cluster instead of starting one, so its runner start costs
    a few round trips to that scheduler (connect, check and warm the workers)."""
    from distributed import Client

    _, state, _ = long_lived
    # The reference: one connection and one round trip to every worker, measured now, so
    # the budget grows with the load other test workers put on the machine.
    started = time.monotonic()
    with Client(state.address, set_as_default=False, timeout=30) as client:
        client.run(os.getpid)
    budget = 2.0 + 4 * (time.monotonic() - started)
    result = run_cli(
        "flows/train.py",
        *("--runner", "dask", "--dataset", "iris", "--models", "nb,logreg"),
        *("--storage", str(tmp_path / "s"), "--json"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"reusing the long-lived Dask cluster at {state.address}" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["dashboard_url"] == state.dashboard_url
    took = summary["timings"]["runner_start_seconds"]
    assert took < budget, f"runner start {took:.2f} s, budget {budget:.2f} s"
    assert summary["dask_cluster"] == f"scheduler at {state.address}"


def test_its_dashboard_serves_the_runs_html_pages_only(run_cli, long_lived):
    """A run's chart and performance report open over http from the dashboard (a browser
    does not follow file:// links from the Prefect UI); models and other files do not."""
    import httpx

    _, state, _ = long_lived
    args = ("--runner", "dask", "--dataset", "iris", "--models", "nb,logreg", "--json")
    result = run_cli("flows/train.py", *args)  # default storage: the folder the cluster serves
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    base = state.dashboard_url.rsplit("/", 1)[0]
    url = summary["comparison_chart"]["url"]
    assert url == f"{base}/runs/{summary['flow_run_id']}/comparison.html"
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and "Bokeh" in page.text
    assert summary["performance_report_url"] == url.replace(
        "comparison.html", "dask-performance-report.html"
    )
    report = httpx.get(summary["performance_report_url"], timeout=30)
    assert report.status_code == 200
    for hidden in ("best-model.joblib", "best-model.json", "../dask-cluster.json"):
        response = httpx.get(url.replace("comparison.html", hidden), timeout=30)
        assert response.status_code in (403, 404), hidden


def test_its_dashboard_serves_the_benchmark_chart(long_lived, tmp_path):
    """The benchmark suite's chart, like a run's pages: copied under the runs' folder and
    linked over http (``benchmarks/compare.py`` writes it under ``--out``)."""
    import httpx

    from prefect_sklearn_dask.benchmarks.report import served_chart_url

    chart = tmp_path / "bench-20260101-000000.html"
    chart.write_text("<html><body>Bokeh benchmark chart</body></html>")
    url = served_chart_url({"html": chart})
    _, state, _ = long_lived
    assert url == f"{state.dashboard_url.rsplit('/', 1)[0]}/runs/benchmarks/{chart.name}"
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and "Bokeh benchmark chart" in page.text


def test_stop_ends_it_and_clears_the_state(run_cli, long_lived):
    process, state, _ = long_lived
    result = run_cli("cluster/local.py", "stop", timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"Dask cluster at {state.address} stopped" in result.stdout
    assert process.wait(timeout=30) == 0
    assert read_state() is None
    status = run_cli("cluster/local.py", "status")
    assert status.returncode == 1 and "no long-lived Dask cluster" in status.stdout


def test_ensure_starts_one_in_the_background_then_reuses_it(run_cli):
    """`make run`'s step: the cluster outlives the command that started it."""
    ports = ("--port", str(free_port()), "--dashboard-port", str(free_port()))
    try:
        first = run_cli("cluster/local.py", "ensure", "--workers", "1", *ports, timeout=150)
        assert first.returncode == 0, first.stderr
        assert "Dask cluster started in the background" in first.stdout
        state = read_state()
        assert state is not None and state.dashboard_url in first.stdout
        again = run_cli("cluster/local.py", "ensure", *ports, timeout=60)
        assert again.returncode == 0 and f"Dask cluster reused: {state.address}" in again.stdout
        assert read_state() == state
    finally:
        stopped = run_cli("cluster/local.py", "stop", timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert read_state() is None
