"""The bounded wait on a real LocalCluster, in the races met when a worker is killed
mid-xgboost training (CI and the xgb fault test): the survivor's collective fails the call
before the next poll sees the departure (an ``XGBoostError`` escaped instead of
``ClusterChanged``); cancelling the abandoned training made the scheduler drop the client
(distributed's ``assert ts.who_wants``); another worker dies while the drain asks it
(``CommClosedError`` escaped).
"""

from __future__ import annotations

import os
import signal
import time

import dask.bag as db
import pytest

from prefect_sklearn_dask.ml.partitioned.bounded import (
    ClusterChanged,
    TrainingTimeout,
    bounded_call,
    drain,
    worker_ids,
)
from tests.conftest import two_workers


def hold(seconds: float) -> str:
    """A training task that outlasts the bound it runs under, then ends."""
    time.sleep(seconds)
    return "done"


def die_on_next_run(dask_worker=None) -> None:
    """This worker's process exits when it is next asked to run a function: a worker
    that dies while the drain asks it."""
    dask_worker.handlers["run"] = lambda *args, **kwargs: os._exit(1)


@pytest.fixture(scope="module")
def client():
    with two_workers() as client:
        yield client


def kill_a_worker_then_fail(client) -> None:
    """What a survivor's collective does: its peer is SIGKILLed, the scheduler notices,
    then the call fails with the collective's own error."""
    before = worker_ids(client)
    victim, pid = sorted(client.run(os.getpid).items())[0]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while worker_ids(client).get(victim) == before[victim]:
        assert time.monotonic() < deadline, "the scheduler did not see the kill"
        time.sleep(0.05)
    raise RuntimeError("allgather failed: peer closed")


@pytest.mark.timeout(120)
def test_a_call_failing_as_a_worker_leaves_is_a_cluster_change(client):
    client.wait_for_workers(2, timeout=60)
    with pytest.raises(ClusterChanged, match="left or restarted") as raised:
        # a poll longer than the call: only the check after the failure can see the kill
        bounded_call(client, lambda: kill_a_worker_then_fail(client), 60, "xgb", poll=30)
    assert isinstance(raised.value.__cause__, RuntimeError)


@pytest.mark.timeout(120)
def test_a_call_failing_on_a_steady_cluster_keeps_its_error(client):
    client.wait_for_workers(2, timeout=60)

    def bad_params() -> None:
        raise ValueError("max_depth must be positive")

    with pytest.raises(ValueError, match="max_depth"):
        bounded_call(client, bad_params, 60, "xgb", poll=0.1)


def first(parts):
    return next(iter(parts), None)


def train_like_xgboost(client) -> object:
    """What ``xgboost.dask.train`` submits: one ``fn-`` task per worker and a reduction
    over them (``first_valid``) whose middle tasks no client holds. The tasks outlast the
    2 s bound, then end: the drain waits for them (no worker restart, slow under load)."""
    fns = [client.submit(hold, 5, key=f"fn-{i}", pure=False) for i in range(2)]
    return client.compute(db.from_delayed(fns).reduction(first, first)).result()


@pytest.mark.timeout(120)
def test_an_abandoned_training_is_cancelled_without_dropping_the_client(client):
    """Cancelling the ``fn-`` keys while the reduction's middle tasks depend on them trips
    distributed's ``assert ts.who_wants`` in ``stimulus_cancel``: the scheduler then
    drops this client, and every future it holds (the flow's data too) is cancelled."""
    client.wait_for_workers(2, timeout=60)
    kept = client.submit(pow, 2, 10, key="kept-before-training")
    assert kept.result(timeout=30) == 1024
    with pytest.raises(TrainingTimeout):
        bounded_call(
            client,
            lambda: train_like_xgboost(client),
            2,
            "xgb",
            poll=0.2,
            key_names=("fn-",),
            drain_seconds=60,
        )
    time.sleep(1.0)  # a dropped client learns it from its stream
    assert kept.status != "cancelled", "the scheduler dropped the client"
    assert kept.result(timeout=60) == 1024


@pytest.mark.timeout(120)
def test_a_worker_that_dies_while_the_drain_asks_is_gone_not_an_error():
    """A cluster of its own: the killed worker does not always come back in time."""
    with two_workers() as client:
        busy, dying = sorted(worker_ids(client))
        future = client.submit(hold, 3, key="fn-held", workers=[busy], pure=False)
        deadline = time.monotonic() + 30
        while not client.processing().get(busy):
            assert time.monotonic() < deadline, "the held task did not start"
            time.sleep(0.1)
        client.run(die_on_next_run, workers=[dying])

        drain(client, ("fn-",), seconds=60, poll=0.1)  # until the held task ends

        assert future.result(timeout=30) == "done"
