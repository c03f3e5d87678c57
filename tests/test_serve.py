"""serve -> deployment run -> artifacts + model, through Prefect's Python API and its REST API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prefect.deployments import run_deployment

from prefect_sklearn_dask.commands.serve import build_schedule
from prefect_sklearn_dask.ml.errors import UserError
from tests.conftest import ROOT

DEPLOYMENT = "train-flow/TrainClassifiers"


@pytest.fixture(scope="module")
def served(prefect_api):
    """`python flows/serve.py` as a user starts it; stopped (with its runs) afterwards."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "flows" / "serve.py")],
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            response = httpx.get(f"{prefect_api}/deployments/name/{DEPLOYMENT}")
            if response.status_code == 200:
                yield response.json()
                return
            assert process.poll() is None, "serve.py exited early"
            time.sleep(1)
        pytest.fail("deployment never appeared")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_deployment_run_trains_on_dask(served, prefect_api, tmp_path):
    flow_run = run_deployment(
        DEPLOYMENT,
        parameters={
            "runner": "dask",
            "workers": 2,
            "dataset": "iris",
            "models": ["nb", "logreg"],
            "storage": str(tmp_path),
        },
        timeout=240,
    )
    assert flow_run.state.is_completed(), flow_run.state
    artifacts = httpx.post(
        f"{prefect_api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [str(flow_run.id)]}}},
    ).json()
    assert {"model-comparison", "best-model", "dask-dashboard"} <= {a["key"] for a in artifacts}
    manifests = list(Path(tmp_path).rglob("best-model.json"))
    assert len(manifests) == 1 and str(flow_run.id) in str(manifests[0])


def test_rest_api_triggers_a_run_and_reads_it_back(served, prefect_api, tmp_path):
    parameters = {"runner": "threads", "dataset": "iris", "models": ["nb"]}
    parameters["storage"] = str(tmp_path)
    # a caller retries 503 (the server's answer while SQLite is locked), as Prefect's client does
    for _ in range(10):
        created = httpx.post(
            f"{prefect_api}/deployments/{served['id']}/create_flow_run",
            json={"parameters": parameters},
        )
        if created.status_code != 503:
            break
        time.sleep(1)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = httpx.get(f"{prefect_api}/flow_runs/{run_id}").json()["state"]["type"]
        if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            break
        time.sleep(1)
    assert state == "COMPLETED"


@pytest.mark.parametrize(
    "args",
    [
        ("not a cron", None, None, None),
        (None, -5.0, None, None),
        (None, None, "FREQ=SOMETIMES", None),
        ("0 3 * * *", None, None, "Nowhere/City"),
        ("0 3 * * *", 60.0, None, None),
    ],
)
def test_bad_schedules_are_user_errors(args):
    with pytest.raises(UserError):
        build_schedule(*args)


def test_schedules_carry_their_timezone():
    assert build_schedule("0 3 * * *", None, None, "Europe/Berlin").timezone == "Europe/Berlin"
    assert build_schedule(None, 3600, None, None).interval.total_seconds() == 3600
    assert build_schedule(None, None, "FREQ=WEEKLY;BYDAY=MO", "UTC").rrule.startswith("FREQ")
