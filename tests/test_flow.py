"""The flow on every runner, against a real Prefect server and real Dask clusters."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter

from prefect_sklearn_dask.flow.artifacts import REPORT_KEY, TABLE_KEY
from prefect_sklearn_dask.flow.model_store import load_model
from prefect_sklearn_dask.flow.train_flow import train_flow
from tests.dask_procs import dask_cluster
from tests.records import wait_for_task_runs

MODELS = ["rf", "logreg", "knn", "nb"]
SCORES = ("accuracy", "f1_macro", "roc_auc", "cv_f1_macro_mean")


def run(runner: str, storage: Path, **kwargs) -> dict:
    return train_flow(
        dataset="wine",
        models=MODELS,
        runner=runner,
        workers=2,
        cv=3,
        storage=str(storage),
        cache=False,  # each runner must really fit: the scores are compared across runners
        **kwargs,
    )


@pytest.fixture(scope="module")
def summaries(prefect_api, tmp_path_factory) -> dict[str, dict]:
    storage = tmp_path_factory.mktemp("storage")
    return {runner: run(runner, storage) for runner in ("sequential", "threads", "dask")}


def scores(summary: dict) -> dict[str, tuple]:
    return {row["model"]: tuple(row[k] for k in SCORES) for row in summary["rows"]}


def test_runners_agree_on_every_score(summaries):
    reference = scores(summaries["sequential"])
    assert set(reference) == set(MODELS)
    assert scores(summaries["threads"]) == reference
    assert scores(summaries["dask"]) == reference


def test_dask_run_reports_its_dashboard(summaries):
    assert summaries["dask"]["dashboard_url"].startswith("http://127.0.0.1:")
    assert summaries["threads"]["dashboard_url"] is None


def test_dask_run_saves_its_performance_report_next_to_its_model(summaries):
    summary = summaries["dask"]
    report = Path(summary["performance_report"])
    assert report.parent == Path(summary["model"]["record_path"]).parent
    assert "Dask Performance Report" in report.read_text()
    assert summaries["threads"]["performance_report"] is None

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[REPORT_KEY])),
                flow_run_filter=FlowRunFilter(id={"any_": [summary["flow_run_id"]]}),
            )

    import asyncio

    (artifact,) = asyncio.run(read())
    assert f"`{report}`" in artifact.data and summary["dashboard_url"] in artifact.data
    assert "file://" not in artifact.data  # a browser would not follow it from the UI


def test_table_artifact_has_one_row_per_model(summaries):
    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[TABLE_KEY])),
                flow_run_filter=FlowRunFilter(id={"any_": [summaries["dask"]["flow_run_id"]]}),
            )

    import asyncio

    artifacts = asyncio.run(read())
    assert len(artifacts) == 1
    table = artifacts[0].data
    rows = table if isinstance(table, list) else __import__("json").loads(table)
    assert sorted(r["model"] for r in rows) == sorted(MODELS)


def test_best_model_reloads_with_its_hash_and_predicts(summaries):
    from sklearn.datasets import load_wine

    summary = summaries["dask"]
    model, manifest = load_model(Path(summary["model"]["manifest_path"]))
    assert manifest["sha256"] == summary["model"]["sha256"]
    assert manifest["model"] == summary["best"]["model"]
    assert summary["predict_command"].endswith("--data YOUR.csv")
    X, y = load_wine(return_X_y=True, as_frame=True)
    assert (model.predict(X) == y.to_numpy()).mean() > 0.8


def test_server_sees_every_task_run_of_a_remote_cluster(prefect_api, tmp_path):
    """The upstream trap: workers reporting to their own temporary servers.

    The workers are ``dask worker`` processes started without any PREFECT_* variable (a
    LocalCluster's workers would inherit this process's PREFECT_API_URL and never meet
    the trap): only the flow can tell them where its server is."""
    with dask_cluster(tmp_path, n_workers=2) as address:
        summary = train_flow(
            dataset="iris", models=MODELS, runner="dask", address=address, storage=str(tmp_path)
        )

    task_runs = wait_for_task_runs(summary["flow_run_id"], len(MODELS))
    assert sorted(t.name for t in task_runs) == sorted(f"train-{m}" for m in MODELS)
    assert all(t.state.is_completed() for t in task_runs)
