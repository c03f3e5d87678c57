"""serve.py --notify: Prefect automations POST to a real receiver on 127.0.0.1.

One served deployment (iris, `nb`, threads) whose automations are created while the
receiver is still down (a warning, not a failure); its runs then: one on the served
parameters (the baseline), one that fails, one whose `lda` beats the baseline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prefect.deployments import run_deployment

from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.notify.automations import (
    check_webhook_url,
    list_notifications,
    parse_duration,
    sync_notifications,
)
from prefect_sklearn_dask.notify.improved import improvement
from tests.conftest import ROOT, free_port

DEPLOYMENT = "train-flow/TrainClassifiers"
SECRET = "s3cret-db-pass-7731"
DELIVERY_S = 120  # the server's triggers and actions services, on a loaded machine


class Receiver:
    """A webhook on 127.0.0.1 that keeps every POST body."""

    def __init__(self, port: int) -> None:
        self.posts: list[dict] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def about(self, run_name: str) -> list[dict]:
        return [p for p in self.posts if run_name in p["subject"]]

    def wait_for(self, run_name: str, timeout: float = DELIVERY_S) -> list[dict]:
        """The POSTs about ``run_name`` once one has come, and a few seconds for any more."""
        deadline = time.monotonic() + timeout
        while not self.about(run_name) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)
        return self.about(run_name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def notified(prefect_api, tmp_path_factory):
    """serve.py --notify as a user starts it, with a secret in its environment."""
    tmp = tmp_path_factory.mktemp("notify")
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    err = tmp / "serve.err"
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_API_DATABASE_PASSWORD": SECRET}
    with open(tmp / "serve.out", "wb") as out, open(err, "wb") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "flows" / "serve.py"),
                *("--dataset", "iris", "--models", "nb", "--runner", "threads"),
                *("--storage", str(tmp / "storage"), "--notify", url),
                *("--notify-stuck-after", "10m"),
            ],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=errors,
            start_new_session=True,
        )
    receiver = None
    try:
        deadline = time.monotonic() + 180
        while "automation(s) created" not in err.read_text():
            assert process.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "automations never created"
            time.sleep(1)
        receiver = Receiver(port)  # up only now: creation saw it unreachable
        deployment = httpx.get(f"{prefect_api}/deployments/name/{DEPLOYMENT}").json()
        yield {"receiver": receiver, "deployment": deployment, "stderr": err, "tmp": tmp}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        subprocess.run(
            [sys.executable, str(ROOT / "flows" / "serve.py"), "--remove-notifications"],
            env={**os.environ, "PREFECT_API_URL": prefect_api},
            capture_output=True,
            timeout=120,
        )
        if receiver is not None:
            receiver.close()


def _run(parameters: dict | None = None):
    return run_deployment(DEPLOYMENT, parameters=parameters or {}, timeout=240)


def _no_secret(receiver: Receiver) -> None:
    for post in receiver.posts:
        assert SECRET not in json.dumps(post)


def test_unreachable_receiver_at_creation_is_a_warning(notified):
    lines = notified["stderr"].read_text().splitlines()
    warnings = [line for line in lines if line.startswith("warning: the notification receiver")]
    assert len(warnings) == 1, lines
    assert not any(line.startswith("error") for line in lines)


def test_run_uses_served_parameters_and_improvement_notifies(notified, prefect_api):
    receiver = notified["receiver"]
    baseline = _run()
    assert baseline.state.is_completed(), baseline.state
    stored = httpx.get(f"{prefect_api}/flow_runs/{baseline.id}").json()["parameters"]
    assert stored["dataset"] == "iris" and stored["models"] == ["nb"]
    assert stored["runner"] == "threads"
    manifests = list((notified["tmp"] / "storage").rglob("best-model.json"))
    assert [json.loads(m.read_text())["model"] for m in manifests] == ["nb"]

    better = _run({"models": ["lda"]})  # lda scores 1.0 on iris, nb 0.973
    assert better.state.is_completed(), better.state
    posts = receiver.wait_for(better.name)
    assert len(posts) == 1, receiver.posts
    text = posts[0]["text"]
    assert "better model" in posts[0]["subject"]
    assert "lda f1_macro=1.0" in text and "previous best nb" in text
    assert f"/runs/flow-run/{better.id}" in text and "Running" in text
    assert receiver.about(baseline.name) == []  # the first run had nothing to beat
    _no_secret(receiver)


def test_failed_run_notifies_once_without_secrets(notified):
    receiver = notified["receiver"]
    failed = _run({"dataset": f"/nonexistent/{SECRET}/data.csv", "target": "y"})
    assert failed.state.is_failed(), failed.state
    posts = receiver.wait_for(failed.name)
    assert len(posts) == 1, receiver.posts
    subject, text = posts[0]["subject"], posts[0]["text"]
    assert f"{failed.name}: Failed" in subject
    assert f"Flow run {failed.name} of {DEPLOYMENT} ended Failed" in text
    assert "DataError" in text and "***" in text
    assert f"/runs/flow-run/{failed.id}" in text
    _no_secret(receiver)


def test_serving_again_updates_instead_of_adding(notified):
    deployment = notified["deployment"]
    before = list_notifications(DEPLOYMENT)
    synced = sync_notifications(
        deployment["id"], DEPLOYMENT, notified["receiver"].url, "http://x", parse_duration("10m")
    )
    assert synced.created == [] and len(synced.updated) == 3
    after = list_notifications(DEPLOYMENT)
    assert len(before) == len(after) == 3
    assert {line.split("  ")[0] for line in after} == {
        f"{DEPLOYMENT}: run failed",
        f"{DEPLOYMENT}: run stuck",
        f"{DEPLOYMENT}: better model",
    }


def test_stuck_automation_is_proactive_on_running(notified, prefect_api):
    automations = httpx.post(f"{prefect_api}/automations/filter", json={}).json()
    stuck = next(a for a in automations if a["name"] == f"{DEPLOYMENT}: run stuck")
    trigger = stuck["trigger"]
    assert trigger["posture"] == "Proactive" and trigger["within"] == 600
    assert trigger["after"] == ["prefect.flow-run.Running"]
    related = trigger["match_related"]
    assert related["prefect.resource.id"] == f"prefect.deployment.{notified['deployment']['id']}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--notify", "ftp://example.com/hook"], "http:// or https://"),
        (["--notify", "hooks.example.com"], "http:// or https://"),
        (["--notify", "http://127.0.0.1:9/h", "--notify-stuck-after", "0"], "positive"),
        (["--notify", "http://127.0.0.1:9/h", "--notify-stuck-after=-5m"], "positive"),
        (["--notify", "http://127.0.0.1:9/h", "--notify-stuck-after", "soon"], "duration"),
        (["--models", "nope"], "unknown model"),
        (["--dataset", "missing.csv", "--target", "y"], "not found"),
        (["--runner", "threads", "--address", "tcp://127.0.0.1:8786"], "needs --runner dask"),
        (["--cv", "1"], "--cv"),
    ],
)
def test_bad_serve_input_is_one_line_and_exit_2(run_cli, args, expected):
    result = run_cli("flows/serve.py", *args, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


def test_durations_and_urls():
    assert parse_duration("90").total_seconds() == 90
    assert parse_duration("45m").total_seconds() == 2700
    assert parse_duration("1.5h").total_seconds() == 5400
    assert check_webhook_url(" https://hooks.example.com/a ") == "https://hooks.example.com/a"
    with pytest.raises(UserError):
        check_webhook_url("file:///etc/passwd")


def _manifest(run: str, model: str, score: float, sha: str = "abc", metric: str = "f1_macro"):
    return {
        "flow_run_id": run,
        "model": model,
        "metric": metric,
        "dataset": "iris",
        "dataset_sha256": sha,
        "scores": {metric: score},
    }


def test_improvement_compares_same_dataset_and_metric(tmp_path: Path):
    def write(manifest):
        folder = tmp_path / manifest["flow_run_id"]
        folder.mkdir()
        (folder / "best-model.json").write_text(json.dumps(manifest))

    assert improvement(_manifest("now", "rf", 0.9), tmp_path) is None  # nothing to beat
    write(_manifest("a", "nb", 0.8))
    write(_manifest("b", "svc", 0.95, sha="other"))  # another dataset
    write(_manifest("c", "knn", 0.99, metric="accuracy"))  # another metric
    found = improvement(_manifest("now", "rf", 0.9), tmp_path)
    assert found["previous"] == {"model": "nb", "score": 0.8, "flow_run_id": "a"}
    write(_manifest("d", "hgb", 0.9))
    assert improvement(_manifest("now", "rf", 0.9), tmp_path) is None  # a tie is no gain


def test_ui_reads_its_own_server(prefect_api):
    """The UI of a server on a port other than 4200 must call that server's API."""
    settings = httpx.get(prefect_api.removesuffix("/api") + "/ui-settings").json()
    assert settings["api_url"] == prefect_api
