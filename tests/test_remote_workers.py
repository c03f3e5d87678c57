"""Hand-started ``dask scheduler`` + ``dask worker`` processes, as on another machine.

The workers start without any Prefect setting; the flow must give them its API URL,
so that task runs *and the log lines written inside tasks* reach the flow's server.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId

from prefect_sklearn_dask.flow.train_flow import train_flow
from tests.dask_procs import dask_cluster
from tests.records import wait_for_task_runs

MODELS = ["logreg", "nb"]


async def _logs(task_runs):
    async with get_client() as client:
        return await client.read_logs(
            log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[t.id for t in task_runs]))
        )


def test_task_runs_and_task_logs_from_hand_started_workers_reach_the_server(prefect_api, tmp_path):
    with dask_cluster(tmp_path, n_workers=1) as address:
        summary = train_flow(
            dataset="iris", models=MODELS, runner="dask", address=address, storage=str(tmp_path)
        )
    task_runs = wait_for_task_runs(summary["flow_run_id"], len(MODELS))
    logs = asyncio.run(_logs(task_runs))
    assert sorted(t.name for t in task_runs) == sorted(f"train-{m}" for m in MODELS)
    assert all(t.state.is_completed() for t in task_runs)
    by_run = {t.id: t.name for t in task_runs}
    messages = {(by_run[log.task_run_id], log.message.split(" on ")[0]) for log in logs}
    for model in MODELS:
        # get_run_logger() inside the task, before and after the fit
        assert (f"train-{model}", f"training {model}") in messages, messages
        assert any(
            name == f"train-{model}" and m.startswith(f"trained {model}:") for name, m in messages
        ), messages
    report = summary["performance_report"]
    assert report and report.endswith(".html")


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory):
    """A worker that lacks this project's modules (as on a machine without it installed)."""
    with dask_cluster(tmp_path_factory.mktemp("bare"), n_workers=1, bare=True) as address:
        yield address


def test_worker_without_the_project_is_one_line_naming_what_to_install(run_cli, bare_cluster):
    result = run_cli(
        "flows/train.py", "--address", bare_cluster, "--dataset", "iris", "--models", "nb"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "lack this project's modules" in lines[0]
    assert "pip install" in lines[0] and "--upload-code" in lines[0]


def test_upload_code_ships_the_project_to_such_a_worker(run_cli, bare_cluster, tmp_path):
    result = run_cli(
        "flows/train.py",
        *("--address", bare_cluster, "--dataset", "iris", "--models", "nb,logreg"),
        *("--upload-code", "--storage", str(tmp_path / "storage"), "--json"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # "[2/2]" and exit 0 come with a failed fit too: the rows say whether each one trained
    rows = json.loads(result.stdout)["rows"]
    assert {r["model"]: r["status"] for r in rows} == {"nb": "ok", "logreg": "ok"}, rows
