"""Many flow runs at once against the default SQLite server: no 'database is locked'."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from distributed import LocalCluster

from prefect_sklearn_dask.flow.train_flow import train_flow
from prefect_sklearn_dask.server.process import prefect_home
from tests.records import wait_for_task_runs

LOCKED = "database is locked"


def burst(n_runs: int, storage) -> list:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        ThreadPoolExecutor(n_runs) as pool,
    ):
        futures = [
            pool.submit(
                contextvars.copy_context().run,  # each thread sees the test server's settings
                train_flow,
                dataset="iris",
                models=["nb", "tree"],
                runner="dask",
                address=cluster.scheduler_address,
                storage=str(storage),
                seed=i,
                return_state=True,
            )
            for i in range(n_runs)
        ]
        return [f.result() for f in futures]


def server_log() -> Path:
    """The test server's log (tests/conftest.py starts it in this PREFECT_HOME)."""
    return prefect_home() / "server.log"


def check(states: list, log_before: int) -> None:
    """Every run completed, and "database is locked" is nowhere: not in a flow run's state,
    not in a task run's state, not in what the server logged during the burst (a write the
    server retried or dropped leaves it there even when every run completed)."""
    failed = [s.message for s in states if not s.is_completed()]
    assert not failed, failed
    assert not any(LOCKED in str(s.message) for s in states)
    for state in states:
        runs = wait_for_task_runs(state.state_details.flow_run_id, 2)
        assert sorted(t.name for t in runs) == ["train-nb", "train-tree"], runs
        assert all(t.state.is_completed() for t in runs), [t.state for t in runs]
        assert not any(LOCKED in str(t.state.message) for t in runs)
    with open(server_log(), "rb") as log:
        log.seek(log_before)
        logged = log.read().decode(errors="replace")
    assert LOCKED not in logged.lower(), logged[-3000:]


def test_16_concurrent_runs_on_sqlite(prefect_api, tmp_path):
    before = server_log().stat().st_size
    check(burst(16, tmp_path), before)


@pytest.mark.soak
def test_32_concurrent_runs_on_sqlite_soak(prefect_api, tmp_path):
    before = server_log().stat().st_size
    check(burst(32, tmp_path), before)
