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
