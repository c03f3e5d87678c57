"""Many flow runs at once against the default SQLite server: no 'database is locked'."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

import pytest
from distributed import LocalCluster

from prefect_sklearn_dask.flow.train_flow import train_flow


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


def check(states: list) -> None:
    failed = [s.message for s in states if not s.is_completed()]
    assert not failed, failed
    assert not any("database is locked" in str(s.message) for s in states)


def test_16_concurrent_runs_on_sqlite(prefect_api, tmp_path):
    check(burst(16, tmp_path))


@pytest.mark.slow
def test_32_concurrent_runs_on_sqlite_soak(prefect_api, tmp_path):
    check(burst(32, tmp_path))
