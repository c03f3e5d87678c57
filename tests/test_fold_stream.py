"""``fold_stream`` on a real Dask cluster: how many scheduler messages its calls cost.

The Optuna driver sends folds through it; a message per fold (one ``client.submit``
each, one ``gather`` per finished fold) cost 1.2-1.4x raw ``client.map`` of the same
fits on 2 cores (benchmarks/results; the profile is in benchmarks/README.md).
"""

from __future__ import annotations

import time

import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

from prefect_sklearn_dask.bridge.fanout import fits_on, fold_stream


def _nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


class _GraphCount(SchedulerPlugin):
    """Counts the graphs (client messages with tasks) the scheduler receives."""

    def __init__(self) -> None:
        self.graphs: list[int] = []

    def update_graph(self, scheduler, *, keys, **kwargs) -> None:
        self.graphs.append(len(keys))


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _count_graphs(client) -> _GraphCount:
    """A plugin on the in-process scheduler (``processes=False``), read back directly."""
    counter = _GraphCount()
    client.cluster.scheduler.add_plugin(counter, name=f"graphs-{time.time_ns()}")
    return counter


def test_calls_submitted_between_waits_go_out_as_one_graph(client):
    counter = _count_graphs(client)
    with fits_on(client), fold_stream(_nap) as stream:
        for tag in range(6):
            stream.submit(tag, 0.01)
        assert counter.graphs == []  # nothing sent before the driver waits
        results = []
        while len(results) < 6:
            results += stream.completed()
    assert counter.graphs == [6]
    assert sorted(tag for tag, _ in results) == list(range(6))


def test_results_are_collected_in_batches_while_the_workers_stay_fed(client):
    """With ``2 x capacity`` calls still running, finished ones wait for more: 10 calls
    on 2 threads come back in one batch of at least 7, not one at a time."""
    with fits_on(client), fold_stream(_nap) as stream:
        assert stream.capacity == 2
        for tag in range(10):
            stream.submit(tag, 0.05)
        first = stream.completed()
        assert len(first) >= 7
        rest = []
        while len(first) + len(rest) < 10:
            rest += stream.completed()
    assert sorted(tag for tag, _ in first + rest) == list(range(10))
