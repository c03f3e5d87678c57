"""Retries, partial failure, the failure threshold and the concurrency cap, on real runs.

The failing models are registered only for these tests (a classifier that raises in
``fit``); everything else is the real flow, task, runner and server.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterable

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter
from sklearn.naive_bayes import GaussianNB

from prefect_sklearn_dask.flow.train_flow import FAILURE_KEY, train_flow
from prefect_sklearn_dask.ml import registry
from prefect_sklearn_dask.ml.registry import ModelSpec

FLAKY_CALLS = itertools.count()


class FlakyNB(GaussianNB):
    """Fails its first fit with a transient-looking error, then works."""

    def fit(self, X, y, **kwargs):
        if next(FLAKY_CALLS) == 0:
            raise ConnectionError("worker connection reset (simulated)")
        return super().fit(X, y, **kwargs)


class BrokenNB(GaussianNB):
    def fit(self, X, y, **kwargs):
        raise RuntimeError("this model always breaks")


@pytest.fixture
def extra_models(monkeypatch):
    monkeypatch.setitem(
        registry.REGISTRY, "flaky", ModelSpec("flaky", "Flaky", lambda s: FlakyNB())
    )
    monkeypatch.setitem(
        registry.REGISTRY, "broken", ModelSpec("broken", "Broken", lambda s: BrokenNB())
    )


def run(tmp_path, models, **kwargs):
    kwargs.setdefault("workers", 2)
    kwargs.setdefault("cache", False)  # these tests count real fits, not cached ones
    return train_flow(
        dataset="iris", models=models, runner="threads", storage=str(tmp_path), **kwargs
    )


def test_a_task_that_fails_once_is_retried(prefect_api, extra_models, tmp_path):
    summary = run(tmp_path, ["flaky", "nb"])
    rows = {r["model"]: r for r in summary["rows"]}
    assert rows["flaky"]["status"] == "ok"
    assert next(FLAKY_CALLS) >= 2  # failed once, then succeeded


def test_one_broken_model_is_a_failed_row_not_a_failed_run(prefect_api, extra_models, tmp_path):
    summary = run(tmp_path, ["broken", "nb", "logreg"])
    rows = {r["model"]: r for r in summary["rows"]}
    assert rows["broken"]["status"] == "failed"
    assert "always breaks" in rows["broken"]["error"]
    assert rows["nb"]["status"] == rows["logreg"]["status"] == "ok"
    assert summary["best"]["model"] in {"nb", "logreg"}


def test_crossing_the_failure_threshold_fails_the_run_with_a_report(
    prefect_api, extra_models, tmp_path
):
    state = run(tmp_path, ["broken", "nb"], max_failures=0, return_state=True)
    assert state.is_failed()
    assert "more than 0 allowed" in state.message

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[FAILURE_KEY])),
                flow_run_filter=FlowRunFilter(id={"any_": [state.state_details.flow_run_id]}),
            )

    artifacts = asyncio.run(read())
    assert len(artifacts) == 1 and "always breaks" in artifacts[0].data
    assert not list(tmp_path.rglob("*.joblib"))


class SlowNB(GaussianNB):
    """Records how many fits overlap, across the runner's threads."""

    lock = threading.Lock()
    active = 0
    peak = 0

    def fit(self, X, y, **kwargs):
        with SlowNB.lock:
            SlowNB.active += 1
            SlowNB.peak = max(SlowNB.peak, SlowNB.active)
        try:
            threading.Event().wait(0.3)
            return super().fit(X, y, **kwargs)
        finally:
            with SlowNB.lock:
                SlowNB.active -= 1


def test_the_concurrency_cap_is_never_exceeded(prefect_api, monkeypatch, tmp_path):
    names = [f"slow{i}" for i in range(3)]
    for name in names:
        monkeypatch.setitem(registry.REGISTRY, name, ModelSpec(name, name, lambda s: SlowNB()))
    run(tmp_path, names, workers=3, max_concurrent=3)
    assert SlowNB.peak >= 2  # without the cap the fits do overlap
    SlowNB.peak = 0
    run(tmp_path, names, workers=3, max_concurrent=1)
    assert SlowNB.peak == 1


def peak_overlap(spans: Iterable[tuple[float, float]]) -> int:
    """Most (start, stop) spans open at the same moment; a stop before a start at a tie."""
    events = sorted(event for start, stop in spans for event in ((start, 1), (stop, -1)))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def fit_spans(rows: list[dict]) -> list[tuple[float, float]]:
    """Each fit's own start/finish times, from the comparison rows."""
    return [(r["started_at"], r["finished_at"]) for r in rows]


def test_the_concurrency_cap_holds_on_dask_workers(prefect_api, tmp_path):
    """Two worker processes; with a cap of 1 their fits never overlap."""
    common = dict(
        dataset="synthetic:n_samples=3000,n_features=20",
        models=["rf", "et", "hgb", "svc"],
        runner="dask",
        workers=2,
        storage=str(tmp_path),
        cache=False,  # both runs must fit: their timelines are compared
    )
    free = train_flow(**common, max_concurrent=2)
    assert peak_overlap(fit_spans(free["rows"])) == 2  # two workers do run fits side by side
    capped = train_flow(**common, max_concurrent=1)
    assert peak_overlap(fit_spans(capped["rows"])) == 1
