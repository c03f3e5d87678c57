"""``--search optuna`` end to end: real Prefect server, real LocalCluster, a real SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from pathlib import Path

import optuna
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter

from prefect_sklearn_dask.flow.search_task import artifact_key
from prefect_sklearn_dask.flow.train_flow import train_flow
from tests.records import wait_for_task_runs
from tests.test_faults import wait_for

MODELS = ["tree", "lda"]
SPACE = {
    # a range with poor corners, so the median pruner stops some trials
    "tree": {"max_depth": "randint(1, 6)", "min_samples_leaf": "randint(1, 40)"},
    # svd with shrinkage raises NotImplementedError: those trials fail, the study goes on
    "lda": {"solver": ["svd", "lsqr"], "shrinkage": ["auto", None]},
}
COMMON = dict(dataset="iris", models=MODELS, search="optuna", n_iter=10, cv=3, search_space=SPACE)


@pytest.fixture(scope="module")
def runs(local_cluster, tmp_path_factory) -> dict[str, dict]:
    """The same search on 2 threads and on the 2-worker cluster (capped at 2: same slots)."""
    threads = train_flow(
        **COMMON, runner="threads", workers=2, storage=str(tmp_path_factory.mktemp("t"))
    )
    dask = train_flow(
        **COMMON,
        runner="dask",
        address=local_cluster.scheduler_address,
        max_concurrent=2,
        storage=str(tmp_path_factory.mktemp("d")),
    )
    return {"threads": threads, "dask": dask}


def searches(summary: dict) -> dict[str, dict]:
    return {r["model"]: r["search"] for r in summary["rows"]}


def stored_trials(search: dict) -> list[tuple]:
    """The study as its SQLite file holds it: number, state, params, fold means."""
    study = optuna.load_study(study_name=search["study"], storage=search["storage"])
    return [(t.number, t.state.name, t.params, t.intermediate_values) for t in study.trials]


def read_artifacts(flow_run_id: str, keys: list[str]) -> dict:
    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)),
                flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}),
            )

    return {a.key: a for a in asyncio.run(read())}


def test_same_seed_same_trials_on_threads_and_dask(runs):
    threads, dask = searches(runs["threads"]), searches(runs["dask"])
    for model in MODELS:
        assert threads[model]["storage"] != dask[model]["storage"]  # two studies
        assert stored_trials(threads[model]) == stored_trials(dask[model])
        assert threads[model]["history"] == dask[model]["history"]
        assert len(threads[model]["history"]) == 10


def test_one_task_run_per_model_and_pruned_trials_counted_and_shown(runs):
    summary = runs["dask"]
    tasks = wait_for_task_runs(summary["flow_run_id"], len(MODELS))
    assert sorted(r.name for r in tasks) == sorted(f"search-{m}" for m in MODELS)
    tree = searches(summary)["tree"]
    pruned = tree["pruned_trials"]
    assert pruned >= 1 and tree["fits"] < 10 * 3
    assert sum(h["state"] == "pruned" for h in tree["history"]) == pruned
    found = read_artifacts(summary["flow_run_id"], [artifact_key(m) for m in MODELS])
    table = json.loads(found["search-tree"].data)
    assert f"{pruned} pruned" in found["search-tree"].description
    assert table[0]["rank"] == 1 and table[0]["state"] == "complete"
    assert table[0]["mean_f1_macro"] == round(tree["cv_mean"], 4)
    assert sum(r["state"] == "pruned" for r in table) == pruned  # all 10 trials shown
    page = Path(summary["comparison_chart"]["path"]).read_text()
    assert "optimisation history" in page and f"tree best ({pruned} pruned)" in page


def test_a_raising_trial_is_failed_and_the_study_goes_on(runs):
    lda = searches(runs["threads"])["lda"]
    rows = {r["model"]: r for r in runs["threads"]["rows"]}
    assert rows["lda"]["status"] == "ok"
    assert lda["failed_trials"] >= 1 and lda["trials"] == 10
    assert rows["lda"]["params"] != {"solver": "svd", "shrinkage": "auto"}
    found = read_artifacts(runs["threads"]["flow_run_id"], ["search-lda"])
    failed = [r for r in json.loads(found["search-lda"].data) if r["state"] == "failed"]
    assert failed and all("NotImplementedError" in r["error"] for r in failed)


SLOW = "synthetic:n_samples=1500,n_features=20"


def study_files(storage: Path) -> list[Path]:
    return sorted((storage / "fit-cache").rglob("optuna/*.sqlite3"))


def finished_trials(storage: Path) -> int:
    """Trials the killed run told, read straight from its SQLite file."""
    total = 0
    for path in study_files(storage):
        with sqlite3.connect(path, timeout=5) as db:
            try:
                (count,) = db.execute(
                    "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
                ).fetchone()
            except sqlite3.OperationalError:  # the schema is still being created
                count = 0
        total += count
    return total


@pytest.mark.slow
def test_a_killed_study_resumes_with_its_finished_trials(start_cli, run_cli, tmp_path):
    """SIGKILL the flow mid-study: the re-run continues the same study (its finished
    trials kept, the interrupted ones asked again); after that completed run,
    ``--reuse-fits`` loads the finished study and fits nothing."""
    storage = tmp_path / "storage"
    args = ["--runner", "threads", "--workers", "1", "--dataset", SLOW, "--models", "svc"]
    args += ["--search", "optuna", "--n-iter", "6", "--cv", "3", "--storage", str(storage)]
    process = start_cli("flows/train.py", *args, name="killed")
    wait_for(lambda: finished_trials(storage) >= 2, 240, "two finished trials")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    before = finished_trials(storage)
    assert 2 <= before < 6, f"kill landed after {before} of 6 trials"
    [study_file] = study_files(storage)

    again = run_cli("flows/train.py", *args, "--json", timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    search = json.loads(again.stdout)["rows"][0]["search"]
    assert search["storage"].endswith(str(study_file))  # the same study file
    assert search["resumed_trials"] == before and search["trials"] == 6
    assert f"{before} trials finished earlier" in again.stderr
    assert search["fits"] <= (6 - before) * 3

    reused = run_cli("flows/train.py", *args, "--reuse-fits", "--json", timeout=400)
    assert reused.returncode == 0, reused.stderr[-3000:]
    loaded = json.loads(reused.stdout)["rows"][0]["search"]
    assert loaded["storage"] == search["storage"]
    assert loaded["resumed_trials"] == 6 and loaded["fits"] == 0
    assert loaded["cv_mean"] == search["cv_mean"]


def space_file(tmp: Path, text: str) -> str:
    path = tmp / "space.yaml"
    path.write_text(text)
    return str(path)


BAD = {
    "n-iter 0": (lambda t: ["--n-iter", "0"], "--n-iter must be at least 1, got 0"),
    "unknown pruner": (
        lambda t: ["--pruner", "asha"],
        "unknown pruner 'asha'; choose from median, hyperband, none",
    ),
    "unexpressible space": (
        lambda t: ["--models", "svc", "--search-space", space_file(t, "svc: {C: expon(1)}")],
        "search space of 'svc', parameter 'C': --search optuna cannot express expon",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_optuna_input_is_one_line_and_exit_2(run_cli, tmp_path, case):
    make_args, expected = BAD[case]
    storage = tmp_path / "storage"
    args = ["--search", "optuna", *make_args(tmp_path), "--storage", str(storage)]
    result = run_cli("flows/train.py", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert not storage.exists()
