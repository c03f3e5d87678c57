"""``--adapt MIN:MAX``: the runner's LocalCluster grows under load and shrinks after."""

from __future__ import annotations

import time

from prefect_sklearn_dask.bridge.runners import build_task_runner


def _workers(client) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def test_adaptive_cluster_grows_under_load_and_shrinks_after():
    runner = build_task_runner("dask", adapt="1:3")
    assert runner.adapt_kwargs == {"minimum": 1, "maximum": 3}
    runner.cluster_kwargs["dashboard_address"] = "127.0.0.1:0"
    with runner:
        client = runner.client
        assert _wait_until(lambda: _workers(client) == 1, 30)
        futures = client.map(time.sleep, [1.0] * 24, pure=False)
        peak = 1

        def grown() -> bool:
            nonlocal peak
            peak = max(peak, _workers(client))
            return peak >= 2

        assert _wait_until(grown, 40), "the cluster did not grow under load"
        client.gather(futures)
        del futures
        assert _wait_until(lambda: _workers(client) == 1, 40), "the cluster did not shrink"
