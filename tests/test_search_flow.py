"""``--search`` end to end: real Prefect server, real LocalCluster, real SIGKILL, the CLI."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, get_task_stream
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter

from prefect_sklearn_dask import FastDaskTaskRunner
from prefect_sklearn_dask.flow.artifacts import TABLE_KEY
from prefect_sklearn_dask.flow.fit_cache import CACHE_DIR, SEARCH_CACHE
from prefect_sklearn_dask.flow.model_store import load_model
from prefect_sklearn_dask.flow.search_task import artifact_key, search_model
from prefect_sklearn_dask.flow.train_flow import train_flow
from prefect_sklearn_dask.ml.data import prepare
from tests.records import wait_for_task_runs
from tests.test_faults import REUSED, wait_for
from tests.test_resilience import peak_overlap

MODELS = ["logreg", "knn", "nb"]


def artifacts(flow_run_id: str, keys: list[str]) -> dict[str, list[dict]]:
    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)),
                flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}),
            )

    found = asyncio.run(read())
    return {a.key: a.data if isinstance(a.data, list) else json.loads(a.data) for a in found}


@pytest.fixture(scope="module")
def dask_search(prefect_api, tmp_path_factory) -> dict:
    storage = tmp_path_factory.mktemp("storage")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        return train_flow(
            dataset="breast_cancer",
            models=MODELS,
            runner="dask",
            address=cluster.scheduler_address,
            search="random",
            n_iter=4,
            storage=str(storage),
        )


def test_dask_search_is_one_task_run_per_model(dask_search):
    runs = wait_for_task_runs(dask_search["flow_run_id"], len(MODELS))
    assert sorted(r.name for r in runs) == sorted(f"search-{m}" for m in MODELS)
    assert all(r.state.is_completed() for r in runs)


def test_dask_search_rows_artifacts_and_best_model(dask_search):
    rows = dask_search["rows"]
    assert sorted(r["model"] for r in rows) == sorted(MODELS)
    for row in rows:
        assert row["status"] == "ok"
        assert row["search"]["fits"] == 4 * 3 and row["search"]["cv"] == 3
        assert 0.8 < row["search"]["cv_mean"] <= 1.0 and row["params"]
    assert dask_search["cache"]["fits"] == len(MODELS) * 12
    keys = [TABLE_KEY, *(artifact_key(m) for m in MODELS)]
    found = artifacts(dask_search["flow_run_id"], keys)
    assert set(found) == set(keys)
    assert {r["fits"] for r in found[TABLE_KEY]} == {12}
    assert len(found["search-knn"]) == 4 and found["search-knn"][0]["rank"] == 1
    model, manifest = load_model(Path(dask_search["model"]["manifest_path"]))
    best = next(r for r in rows if r["model"] == manifest["model"])
    assert manifest["params"] == best["params"]
    assert model.named_steps["classifier"].get_params().items() >= best["params"].items()


def test_a_model_whose_every_candidate_fails_is_a_failed_row(prefect_api, tmp_path):
    summary = train_flow(
        dataset="iris",
        models=["lda", "nb"],
        runner="threads",
        search="grid",
        search_space={"lda": {"solver": ["svd"], "shrinkage": ["auto", 0.5]}},
        storage=str(tmp_path),
    )
    rows = {r["model"]: r for r in summary["rows"]}
    assert rows["nb"]["status"] == "ok"
    assert rows["lda"]["status"] == "failed"
    assert "every candidate of 'lda' failed (6 fits)" in rows["lda"]["error"]
    assert "NotImplementedError" in rows["lda"]["error"]


SLOW = "synthetic:n_samples=4000,n_features=30"


def cached_search_fits(storage: Path) -> list[Path]:
    """Finished search fits wherever the flow's fit cache puts its ``search/`` folders."""
    return [p for p in (storage / CACHE_DIR).rglob("*.joblib") if p.parent.name == SEARCH_CACHE]


@pytest.mark.slow
def test_a_killed_search_resumes_from_its_finished_fits(start_cli, run_cli, tmp_path):
    """SIGKILL mid-search: the re-run fits only what is missing and says how many it reused."""
    storage = tmp_path / "storage"
    args = ["--runner", "threads", "--workers", "1", "--dataset", SLOW, "--models", "rf,logreg"]
    args += ["--search", "grid", "--storage", str(storage)]
    total = (4 + 3) * 3
    process = start_cli("flows/train.py", *args, name="killed")
    wait_for(lambda: len(cached_search_fits(storage)) >= 3, 240, "three finished fits")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    finished = len(cached_search_fits(storage))
    assert 3 <= finished < total, f"kill landed after {finished} of {total} fits"

    again = run_cli("flows/train.py", *args, "--json", timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["cache"] == {**summary["cache"], "reused": finished, "fits": total}
    *per_model, run_total = REUSED.findall(again.stderr)  # each search's line, then the run's
    assert run_total == (str(finished), str(total))
    assert sum(int(reused) for reused, _ in per_model) == finished
    assert all(r["status"] == "ok" for r in summary["rows"])
    assert len(cached_search_fits(storage)) == total


# 0.05 s until a CI run of 2026-12-02 saw two capped fits overlap by more (2 on 2 cores
# under 3 xdist workers): the correction is estimated from heartbeats, late under load.
CLOCK_SLACK_S = 0.25


def fit_overlap(stream: list[dict]) -> int:
    """Most search fits computing at the same moment, from Dask's own task stream.

    The scheduler shifts each worker's times by its estimate of that worker's clock
    offset, which under load is off by a few ms: each span is trimmed by
    :data:`CLOCK_SLACK_S` at both ends, so back-to-back fits do not count as overlapping.
    """
    return peak_overlap(
        (span["start"] + CLOCK_SLACK_S, span["stop"] - CLOCK_SLACK_S)
        for task in stream
        if str(task["key"]).startswith("fit-")
        for span in task["startstops"]
        if span["action"] == "compute"
    )


def test_search_model_in_a_users_own_flow(local_cluster, tmp_path):
    """``search_model`` called in a user's flow on the project's Dask runner: inline, its
    fits go through the runner's client; submitted, it runs on a worker and fans out from
    there. Either way the fits are Dask tasks on the cluster, not Prefect task runs."""
    data = prepare("iris", None, 0.25, 0)
    space = {"C": [0.1, 1.0]}

    @flow(task_runner=FastDaskTaskRunner(address=local_cluster.scheduler_address))
    def users_flow():
        inline = search_model("logreg", data, "grid", space, cv=3)
        submitted = search_model.submit("logreg", data, "grid", space, cv=3).result()
        return inline, submitted

    with Client(local_cluster, set_as_default=False) as client, get_task_stream(client) as stream:
        inline, submitted = users_flow()
    fits = [t for t in stream.data if str(t["key"]).startswith("fit-logreg")]
    assert len(fits) == 2 * 2 * 3
    assert inline.search["fits"] == submitted.search["fits"] == 6
    assert inline.search["cv_mean"] == submitted.search["cv_mean"]
    assert inline.params == submitted.params


def file_ids(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    """Each file's inode and mtime: a fit written again gets a new file (temp + rename)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


SLOW_FITS = {  # rf's fits last well over 2 x CLOCK_SLACK_S, so uncapped ones overlap
    "rf": {"n_estimators": [150], "max_depth": [4, 8]},
    "svc": {"C": [1.0, 10.0]},
    "knn": {"n_neighbors": [5, 15]},
}


def test_max_concurrent_caps_the_fits_of_all_searches_together(local_cluster, tmp_path):
    """Three models' searches at once on 2 workers: with a cap of 1, one fit at a time."""
    common = dict(
        dataset="synthetic:n_samples=3000,n_features=20",
        models=["rf", "svc", "knn"],
        runner="dask",
        address=local_cluster.scheduler_address,
        search="grid",
        search_space=SLOW_FITS,
        storage=str(tmp_path),
        cache=False,
    )
    peaks = {}
    with Client(local_cluster, set_as_default=False) as client:
        for cap in (None, 1):
            with get_task_stream(client) as stream:
                summary = train_flow(**common, max_concurrent=cap)
            assert summary["cache"]["fits"] == 3 * 2 * 3
            peaks[cap] = fit_overlap(stream.data)
    assert peaks[None] >= 2  # uncapped, both workers fit side by side
    assert peaks[1] == 1


SMALL_FORESTS = {
    "rf": {"n_estimators": [30], "max_depth": [2, 4, 8, None], "min_samples_leaf": [1, 5]}
}


def test_a_worker_killed_mid_search_loses_no_finished_fit(local_cluster, tmp_path):
    """SIGKILL one worker while the searches run: the run completes, and no fit that had
    finished is fitted again (its file is the same file), even those whose results the
    dead worker held and Dask recomputes."""
    storage = tmp_path / "storage"
    total = 8 * 3
    with Client(local_cluster, set_as_default=False) as client:
        pid = next(iter(client.run(os.getpid).values()))
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(
                contextvars.copy_context().run,  # the test server's settings, not a temporary one
                train_flow,
                dataset="synthetic:n_samples=2000,n_features=20",
                models=["rf"],
                runner="dask",
                address=local_cluster.scheduler_address,
                search="grid",
                search_space=SMALL_FORESTS,
                storage=str(storage),
            )
            wait_for(lambda: len(cached_search_fits(storage)) >= 4, 240, "four finished fits")
            before = file_ids(cached_search_fits(storage))
            os.kill(pid, signal.SIGKILL)
            summary = run.result(timeout=400)
        client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next test
    assert len(before) < total, "the kill landed after the last fit"
    assert all(r["status"] == "ok" for r in summary["rows"])
    assert summary["cache"]["fits"] == total
    after = cached_search_fits(storage)
    assert len(after) == total
    assert file_ids(list(before)) == before


def write(tmp: Path, text: str) -> str:
    path = tmp / "space.yaml"
    path.write_text(text)
    return str(path)


def with_space(kind: str, text: str):
    return lambda t: ["--search", kind, "--search-space", write(t, text)]


BAD = {
    "unknown search": (lambda t: ["--search", "bayes"], "unknown search 'bayes'"),
    "n-iter below 1": (lambda t: ["--search", "random", "--n-iter", "0"], "--n-iter must be"),
    "cv below 2": (lambda t: ["--search", "grid", "--cv", "1"], "--cv must be at least 2"),
    "unknown model in space": (
        with_space("grid", "catboost: {eta: [1]}"),
        "unknown model 'catboost'",
    ),
    "parameter the estimator does not take": (
        with_space("grid", "svc: {Cee: [1]}"),
        "the estimator takes no parameter Cee; it takes: C, ",
    ),
    "unparseable distribution": (
        with_space("random", "svc: {C: loguniform(1,}"),
        "cannot parse",
    ),
    "empty grid": (
        with_space("grid", "svc: {C: []}"),
        "empty list",
    ),
    "missing space file": (
        lambda t: ["--search", "grid", "--search-space", str(t / "nope.yaml")],
        "not found",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_search_input_is_one_line_and_exit_2(run_cli, tmp_path, case):
    make_args, expected = BAD[case]
    storage = tmp_path / "storage"
    result = run_cli("flows/train.py", *make_args(tmp_path), "--storage", str(storage))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert not storage.exists()
