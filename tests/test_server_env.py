"""The project's server: batched task-run writes by default, the user's settings first."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from prefect_sklearn_dask.server.process import THROUGHPUT_ENV, server_env

RECORDER_BATCH = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"


def test_server_env_batches_writes_and_keeps_the_users_settings(monkeypatch, tmp_path):
    monkeypatch.setenv(RECORDER_BATCH, "7")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    env = server_env(tmp_path)
    assert env[RECORDER_BATCH] == "7"
    flush = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"
    assert env[flush] == THROUGHPUT_ENV[flush]
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_HOME"] == str(tmp_path)
    assert "PREFECT_API_URL" not in env  # the server must not talk to another API


def test_the_running_server_has_the_batch_settings(prefect_api):
    home = Path(os.environ["PREFECT_HOME"])  # the session server's home (conftest)
    pid = int((home / "server.pid").read_text())
    environ = psutil.Process(pid).environ()
    for key, value in THROUGHPUT_ENV.items():
        assert environ.get(key) == value, key


PROCESS_POOL_RUN = """
import json, sys, psutil
from prefect import flow, task
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner
from prefect_sklearn_dask.server.process import ensure_server

@task
def square(x):
    return x * x

@flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
def squares():
    return [f.result() for f in square.map([1, 2, 3])]

if __name__ == "__main__":
    server = ensure_server(port=int(sys.argv[1]))  # as flows/*.py and compare.py do
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        values = squares()
    temporary = [
        " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)
        if "prefect.server.api.server:create_app" in " ".join(p.cmdline())
    ]
    print(json.dumps({"server": server.started, "values": values, "temporary": temporary}))
"""


def test_a_process_pool_flow_after_ensure_server_starts_no_temporary_server(prefect_api, tmp_path):
    """Prefect imported before the server is known (every command) read no API URL into
    its global settings; the process pool's message thread, which does not inherit the
    flow's settings context, then started a temporary Prefect server (uvicorn) of its own
    and left it running after the process."""
    import json
    import subprocess
    import sys
    from urllib.parse import urlsplit

    script = tmp_path / "pool_flow.py"
    script.write_text(PROCESS_POOL_RUN)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # set by the command
    port = urlsplit(prefect_api).port
    done = subprocess.run(
        [sys.executable, str(script), str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["server"] is False  # the session's server, reused through its home
    assert result["values"] == [1, 4, 9]
    assert result["temporary"] == []
