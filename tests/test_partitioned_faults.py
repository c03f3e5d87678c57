"""A Dask worker SIGKILLed while xgboost.dask trains on partitioned data: the training
ends at once with an error the flow retries (it does not wait forever, dmlc/xgboost
#9419), and a retry on the restarted cluster trains.

The scenario runs in a child process with its own LocalCluster: xgboost runs its tracker
on the scheduler, and when the surviving worker gives up on its dead peer the tracker can
abort that whole process ("Fatal Python error: Aborted" in ``xgboost/tracker.py``
``wait_for``; seen in CI under load, not every time). In a LocalCluster that process is
the caller's; here it is the child's, so an abort is reported (xfail, with the child's
output), not a crashed test runner.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from prefect_sklearn_dask.ml.partitioned.bounded import ClusterChanged
from prefect_sklearn_dask.ml.partitioned.profile import profile_source
from prefect_sklearn_dask.ml.partitioned.source import open_source
from prefect_sklearn_dask.ml.partitioned.synthetic import write_synthetic
from prefect_sklearn_dask.ml.partitioned.train import train_and_score

ROOT = Path(__file__).resolve().parents[1]
DONE = "SCENARIO PASSED"
# How xgboost's tracker ends the process (see the module docstring): a Python fatal error
# in its wait, or a C++ exception from its thread ("terminate called after throwing an
# instance of 'dmlc::Error'", "send system error: Broken pipe"): 5 runs in 12
# of the scenario on this 2-core machine on 2026-12-01.
ABORTS = ("xgboost/tracker.py", "'dmlc::Error'")
# Seen on a quiet machine, about one run in three: xgboost's collective fails to bootstrap
# ("Failed to receive the rank for the next worker") and the training ends before the
# kill; not understood yet, so the test shows it (xfail with the output), not hides it.
EARLY = "TRAINING ENDED BEFORE THE KILL"
# Far more rounds than the test lets finish: it must be killed mid-training.
LONG = {"n_estimators": 100_000, "max_depth": 2}


def training_started(client) -> bool:
    processing = client.processing()
    return any(str(key).startswith("fn-") for keys in processing.values() for key in keys)


def scenario(folder: str) -> None:
    """Train, SIGKILL a worker mid-training, check the wait ends, retry; prints DONE."""
    from distributed import Client, LocalCluster

    from prefect_sklearn_dask.ml.partitioned import engines

    # the surviving worker's collective gives up on its dead peer after this (then the
    # worker is free again, or restarted): short, so the retry below starts soon
    engines.COLLECTIVE_TIMEOUT = 10
    write_synthetic(folder, rows=8000, partitions=4, features=8)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        source = open_source(folder, "label")
        profile = profile_source(client, source)
        outcome: dict[str, BaseException | object] = {}

        def train() -> None:
            try:
                outcome["report"] = train_and_score(
                    client, source, profile, "xgb", params=LONG, timeout=120
                )
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=train, daemon=True)
        thread.start()
        deadline = time.monotonic() + 90
        while not training_started(client):
            assert time.monotonic() < deadline, "xgb training did not start"
            if not thread.is_alive():  # see EARLY
                print(f"{EARLY}: {outcome}", flush=True)
                sys.exit(3)
            time.sleep(0.2)
        time.sleep(1.0)  # some rounds in
        victim, pid = sorted(client.run(os.getpid).items())[0]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        thread.join(60)
        assert not thread.is_alive(), "training still waits after its worker was killed"
        assert isinstance(outcome.get("error"), ClusterChanged), outcome
        assert victim in str(outcome["error"])
        assert time.monotonic() - killed < 45  # the collective timeout, a restart at most

        client.wait_for_workers(2, timeout=60)
        report = train_and_score(client, source, profile, "xgb", params={"n_estimators": 5})
        assert report.n_train + report.n_test == 8000 and report.accuracy > 0.6
    print(DONE, flush=True)


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_xgb_training_fails_fast_and_a_retry_trains(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    code = f"from tests.test_partitioned_faults import scenario; scenario({str(tmp_path)!r})"
    child = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = (child.stdout + child.stderr)[-4000:]
    if child.returncode == -signal.SIGABRT and any(mark in child.stderr for mark in ABORTS):
        pytest.xfail(f"xgboost's tracker aborted the scheduler's process (upstream):\n{output}")
    if child.returncode == 3 and EARLY in child.stdout:
        pytest.xfail(f"xgb training ended on its own before the kill:\n{output}")
    assert child.returncode == 0 and DONE in child.stdout, output
