"""Faults provoked for real: SIGKILLed flow and worker processes, Ctrl-C.

Every test starts real processes (the CLI, ``dask scheduler``/``dask worker``) and sends
real signals; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from prefect_sklearn_dask.flow.fit_cache import CACHE_DIR
from prefect_sklearn_dask.flow.train_flow import train_flow
from prefect_sklearn_dask.ml import registry
from tests.conftest import signal_state
from tests.dask_procs import dask_cluster
from tests.records import read_task_runs, wait_for_task_runs

SLOW_DATA = "synthetic:n_samples=8000,n_features=30"
REUSED = re.compile(r"reused (\d+) of (\d+) fits from cache")
TRAINING = re.compile(r"training (\w+) on \S+ \(pid (\d+)\)")
# Three CI runs of 2026-12-02 (2 cores, 3 xdist workers) sent the CLI its SIGINT as the
# first fits began and the run went on to complete, with nothing logged (in the third a
# second SIGINT did nothing either); never seen locally (12 tries, with 2-4 busy loops
# beside it). Suspected: a SIGINT blocked or ignored in the test process, inherited by
# the CLI (start_cli now unblocks it). The test presses Ctrl-C again, checks that nothing
# is left, and reports a lost first SIGINT (xfail) with the CLI's signal masks.
FIRST_SIGINT_S = 20


def wait_for(condition, timeout: float, what: str, interval: float = 0.05, detail=None):
    """``condition()``'s first truthy value; past ``timeout`` an AssertionError that ends
    with ``detail()`` (what the process under test printed) when one is given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    said = f"; it printed:\n{detail()}" if detail else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{said}")


def cached_fits(storage: Path) -> list[Path]:
    folder = storage / CACHE_DIR
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []


def fitting(client) -> dict[str, list[str]]:
    """The fits executing now, by worker address: ``train-model`` task keys in a worker's
    executing set (not the runner's warm-up, not a fit merely queued on a worker)."""

    def executing(dask_worker) -> list[str]:
        keys = (str(ts.key) for ts in dask_worker.state.executing)
        return [k for k in keys if k.startswith("train-model-")]

    return {worker: keys for worker, keys in client.run(executing).items() if keys}


def fits_started(folder: Path) -> list[tuple[str, int]]:
    """(model, pid) of every ``training <model> on <host> (pid <pid>)`` line in the
    ``dask worker`` logs of ``folder`` (tests/dask_procs.py), the fit task's first line."""
    lines = "".join(log.read_text(errors="replace") for log in sorted(folder.glob("worker*.log")))
    return [(model, int(pid)) for model, pid in TRAINING.findall(lines)]


@pytest.mark.slow
def test_a_killed_flow_resumes_from_its_finished_fits(start_cli, run_cli, tmp_path):
    """SIGKILL the flow process after some fits finished: the re-run trains only the rest."""
    storage = tmp_path / "storage"
    models = "gb,rf,et,svc,mlp,logreg,knn,nb"
    args = ["--runner", "threads", "--workers", "1", "--dataset", SLOW_DATA]
    args += ["--models", models, "--storage", str(storage)]
    process = start_cli("flows/train.py", *args, name="killed")
    wait_for(lambda: cached_fits(storage), 180, "the first finished fit")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    finished = len(cached_fits(storage))  # counted after the kill: nothing more is written
    assert 1 <= finished < 8, f"kill landed after {finished} of 8 fits"

    again = run_cli("flows/train.py", *args, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["cache"]["reused"] == finished
    assert f"reused {finished} of 8 fits from cache" in again.stderr
    assert summary["cache"]["said"].startswith(f"resumed: reused {finished} of 8 fits")
    assert sorted(r["model"] for r in summary["rows"]) == sorted(models.split(","))
    assert all(r["status"] == "ok" for r in summary["rows"])
    assert len(cached_fits(storage)) == 8


def test_changed_data_or_parameters_miss_the_cache(prefect_api, tmp_path):
    """Same inputs hit (with --reuse-fits); a changed seed, CV or data file trains again."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    csv = tmp_path / "iris.csv"
    frame.to_csv(csv, index=False)
    storage = tmp_path / "storage"

    def reused(**kwargs) -> int:
        params = dict(dataset=str(csv), target="target", models=["nb", "logreg"], runner="threads")
        summary = train_flow(**{**params, "storage": str(storage), **kwargs})
        assert summary["cache"]["fits"] == 2
        return summary["cache"]["reused"]

    assert reused() == 0
    assert reused(reuse_fits=True) == 2
    assert reused(seed=1, reuse_fits=True) == 0
    assert reused(cv=3, reuse_fits=True) == 0
    assert reused(cache=False) == 0
    frame.iloc[:-1].to_csv(csv, index=False)  # one row fewer: a new fingerprint
    assert reused(reuse_fits=True) == 0
    assert reused(reuse_fits=True) == 2


@pytest.mark.slow
def test_a_sigkilled_dask_worker_loses_nothing(run_cli, start_cli, prefect_api, tmp_path):
    """SIGKILL the worker process running a fit: every model still appears exactly once."""
    models = ["gb", "rf", "et", "svc", "mlp", "logreg"]
    storage = tmp_path / "storage"
    with dask_cluster(tmp_path, n_workers=2) as address:
        from distributed import Client

        args = ["--runner", "dask", "--address", address, "--dataset", SLOW_DATA]
        args += ["--models", ",".join(models), "--storage", str(storage), "--json"]
        process = start_cli("flows/train.py", *args, name="run")
        with Client(address, set_as_default=False, timeout=30) as client:
            busy = next(iter(wait_for(lambda: fitting(client), 180, "a worker running a fit")))
            pid = client.run(os.getpid, workers=[busy])[busy]
            killed = wait_for(
                lambda: [m for m, p in fits_started(tmp_path) if p == pid],
                60,
                f"the fit's first log line from worker pid {pid}",
            )[0]
            os.kill(pid, signal.SIGKILL)
            process.wait(timeout=240)
    stderr = (tmp_path / "run.err").read_text()
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads((tmp_path / "run.out").read_text())
    assert sorted(r["model"] for r in summary["rows"]) == sorted(models)
    assert all(r["status"] == "ok" for r in summary["rows"])
    assert Path(summary["model"]["record_path"]).is_file()
    runs = wait_for_task_runs(summary["flow_run_id"], len(models))
    assert sorted(t.name for t in runs) == sorted(f"train-{m}" for m in models)
    assert all(t.state.is_completed() for t in runs)
    # the model whose worker was killed mid-fit trained again, in another process
    again = [p for m, p in fits_started(tmp_path) if m == killed and p != pid]
    assert again, f"{killed} (killed in pid {pid}) never started again: {fits_started(tmp_path)}"


@pytest.mark.slow
def test_ctrl_c_shuts_the_cluster_down_and_leaves_no_partial_files(start_cli, tmp_path):
    """SIGINT to the CLI while its own LocalCluster trains: no process, no temp file left."""
    storage = tmp_path / "storage"
    args = ["--runner", "dask", "--new-cluster", "--workers", "2", "--dataset", SLOW_DATA]
    args += ["--models", "gb,rf,et,svc,mlp", "--storage", str(storage)]
    process = start_cli("flows/train.py", *args, name="run")
    err = tmp_path / "run.err"
    wait_for(lambda: "training " in err.read_text(), 180, "a fit to start", interval=0.2)
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 2  # the nannies and worker processes of the run's cluster
    masks = signal_state(process.pid)  # bit 2 (0x2) is SIGINT
    os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=FIRST_SIGINT_S)
        first_lost = False
    except subprocess.TimeoutExpired:  # see FIRST_SIGINT_S: a person presses Ctrl-C again
        first_lost = True
        os.kill(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 130, f"CLI signals: {masks}\n{err.read_text()[-3000:]}"
    assert err.read_text().strip().splitlines()[-1] == "interrupted"
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"orphans left: {[p.pid for p in alive]}"
    leftovers = [p for p in storage.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
    for record in storage.rglob("best-model.joblib"):
        assert record.with_name("best-model.json").is_file()
    if first_lost:
        pytest.xfail(
            f"the first SIGINT was lost, the second stopped the run (CLI signals: {masks}):\n"
            + err.read_text()
        )


def test_a_scheduler_lost_during_the_warm_up_fails_at_once(prefect_api, tmp_path):
    """The runner's warm-up waits on every worker: a lost scheduler must not hang it."""
    from distributed import Client
    from distributed.client import FutureCancelledError

    from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner

    procs: dict = {}
    with (
        dask_cluster(tmp_path, n_workers=1, procs=procs) as address,
        FastDaskTaskRunner(address=address) as runner,
    ):
        client = runner.client
        # the only worker thread is busy: the warm-up task waits behind it
        busy = Client.submit(client, time.sleep, 120, pure=False)
        wait_for(lambda: any(client.processing().values()), 60, "the worker to be busy")
        timer = threading.Timer(1.0, os.killpg, (procs["scheduler"].pid, signal.SIGKILL))
        timer.start()
        started = time.monotonic()
        with pytest.raises(FutureCancelledError) as raised:
            runner.warm_workers(timeout=120)
        took = time.monotonic() - started
        del busy
        client.close(timeout=3)
    assert raised.value.reason == "scheduler-connection-lost"
    assert took < 15, f"the warm-up took {took:.1f} s to notice"


@pytest.mark.slow
def test_a_lost_scheduler_fails_fast_in_one_line_and_a_rerun_resumes(start_cli, run_cli, tmp_path):
    models = "gb,rf,et,svc,mlp"
    storage = tmp_path / "storage"
    common = ["--runner", "dask", "--dataset", SLOW_DATA, "--models", models]
    common += ["--storage", str(storage)]
    procs: dict = {}
    with dask_cluster(tmp_path, n_workers=2, procs=procs) as address:
        from distributed import Client

        process = start_cli("flows/train.py", *common, "--address", address, name="lost")
        with Client(address, set_as_default=False, timeout=30) as client:
            wait_for(
                lambda: cached_fits(storage) and fitting(client),
                180,
                "a finished fit and another one running",
            )
        os.killpg(procs["scheduler"].pid, signal.SIGKILL)
        killed = time.monotonic()
        process.wait(timeout=60)
        took = time.monotonic() - killed
    finished = len(cached_fits(storage))  # the workers are stopped: nothing more is written
    assert 1 <= finished < 5, f"the scheduler was lost after {finished} of 5 fits"
    stderr = (tmp_path / "lost.err").read_text()
    assert process.returncode == 1, stderr[-3000:]
    assert took < 15, f"the run took {took:.1f} s to notice"
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: the flow run failed: SchedulerLost: lost the Dask scheduler")
    assert "restart the cluster" in last

    with dask_cluster(tmp_path, n_workers=2) as address:
        again = run_cli("flows/train.py", *common, "--address", address, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert all(r["status"] == "ok" for r in summary["rows"]) and len(summary["rows"]) == 5
    assert summary["cache"]["reused"] == finished
    assert f"reused {finished} of 5 fits from cache" in again.stderr
    assert summary["cache"]["said"].startswith(f"resumed: reused {finished} of 5 fits")


@pytest.mark.slow
def test_a_worker_that_keeps_dying_is_a_failed_row_and_a_failed_task_run(
    prefect_api, monkeypatch, tmp_path
):
    """``crash`` kills its worker, ``hog`` exceeds the memory limit: both end Failed
    (KilledWorker) on the server, not Running; the other models finish."""
    from tests.fault_models import SPECS

    for name, spec in SPECS.items():
        monkeypatch.setitem(registry.REGISTRY, name, spec)
    worker_args = ("--memory-limit", "700MiB", "--preload", "tests.fault_models")
    scheduler_env = {
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
        # One task per worker thread at a time: a task merely queued on a worker that
        # dies is blamed too, so a saturation over 1.0 can fail an innocent model here.
        "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
    }
    with dask_cluster(
        tmp_path, n_workers=2, worker_args=worker_args, scheduler_env=scheduler_env
    ) as address:
        summary = train_flow(
            dataset="iris",
            models=["crash", "hog", "nb", "logreg"],
            runner="dask",
            address=address,
            storage=str(tmp_path / "storage"),
            performance_report=False,
        )
    rows = {r["model"]: r for r in summary["rows"]}
    assert rows["nb"]["status"] == rows["logreg"]["status"] == "ok"
    for name in ("crash", "hog"):
        assert rows[name]["status"] == "failed"
        assert rows[name]["error"].startswith(f"KilledWorker: the Dask worker training '{name}'")
    assert "memory limit is 700 MiB per worker" in rows["hog"]["error"]
    wanted = {"train-crash", "train-hog"}
    deadline = time.monotonic() + 30  # the server records task-run events asynchronously
    while True:
        states = {t.name: t.state for t in read_task_runs(summary["flow_run_id"])}
        settled = wanted <= set(states) and all(states[n].is_failed() for n in wanted)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(1)
    for name in ("crash", "hog"):
        assert states[f"train-{name}"].is_failed(), states[f"train-{name}"]
        assert "KilledWorker" in states[f"train-{name}"].message


@pytest.mark.slow
@pytest.mark.timeout(600)  # room for the first-fit wait below and the rest of the run
def test_the_prefect_server_goes_away_and_comes_back(tmp_path):
    """SIGKILL the run's Prefect server after the first fit, restart it 5 s later: the run
    completes, says the UI missed part of it, and the results are all stored locally."""
    import subprocess
    import sys

    from prefect_sklearn_dask.server.process import start_server, stop_server
    from tests.conftest import ROOT, free_port

    home, port = tmp_path / "server-home", free_port()
    server = start_server(port=port, home=home)
    storage = tmp_path / "storage"
    env = {**os.environ, "PREFECT_API_URL": server.api_url}
    args = ["--runner", "threads", "--workers", "1", "--dataset", SLOW_DATA, "--json"]
    args += ["--models", "gb,rf,et,svc,mlp,logreg", "--storage", str(storage)]
    err = tmp_path / "run.err"
    with open(tmp_path / "run.out", "wb") as out, open(err, "wb") as errors:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "flows/train.py"), *args],
            env=env,
            stdout=out,
            stderr=errors,
            start_new_session=True,
        )
    try:
        # After the first fit's end: a kill while it ran (tried 2026-12-02) once left the
        # restarted server without all 6 task runs and the run without a warning. One
        # loaded 2-core CI run had not reached it in 180 s (~30 s on an idle machine).
        wait_for(
            lambda: "[1/6]" in err.read_text(),
            300,
            "the first fit",
            interval=0.1,
            detail=lambda: err.read_text()[-3000:],
        )
        os.killpg(int((home / "server.pid").read_text()), signal.SIGKILL)
        time.sleep(5)
        start_server(port=port, home=home)
        process.wait(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        stop_server(home)
    stderr = err.read_text()
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads((tmp_path / "run.out").read_text())
    assert [r["status"] for r in summary["rows"]] == ["ok"] * 6
    assert Path(summary["model"]["record_path"]).is_file()
    assert len(cached_fits(storage)) == 6
    assert stderr.count("failed to process item") == 0  # condensed to one warning
    # Either the restarted server recorded every task run, or the run said it did not
    # (Prefect's event client replays unsent events after a short outage, drops them
    # after a longer one: which one happens depends on timing).
    if summary["server_outage"] is None:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: server.api_url}):
            start_server(port=port, home=home)
            try:
                wait_for(
                    lambda: (
                        sum(
                            1
                            for t in read_task_runs(summary["flow_run_id"])
                            if t.state.is_completed()
                        )
                        == 6
                    ),
                    20,
                    "the server to hold 6 Completed task runs (the run did not warn)",
                    interval=1,
                )
            finally:
                stop_server(home)
    else:
        assert "the Prefect server was unreachable during the run" in summary["server_outage"]
        assert "warning" in stderr.lower()
