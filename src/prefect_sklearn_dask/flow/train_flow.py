"""``train-flow``: train several classifiers in parallel as Prefect tasks, compare, keep the best.

    from prefect_sklearn_dask.flow.train_flow import train_flow
    summary = train_flow(dataset="iris", models=["rf", "logreg"], runner="threads")
    summary["best"]["model"], summary["model"]["record_path"]

No ``from __future__ import annotations`` here: a served deployment validates its
parameters from these annotations, which must be real types, not strings.
"""

import shlex
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for

from prefect_sklearn_dask.bridge import faults
from prefect_sklearn_dask.bridge.runners import RunnerName, describe_cluster
from prefect_sklearn_dask.flow import artifacts, fit_cache
from prefect_sklearn_dask.flow.comparison import publish_chart
from prefect_sklearn_dask.flow.masked_failures import masked_failures
from prefect_sklearn_dask.flow.model_store import MODEL_DIR, StoredModel, save_model
from prefect_sklearn_dask.flow.run_options import Metric, Pruner, RunOptions, Search
from prefect_sklearn_dask.flow.runner import Run, open_runner
from prefect_sklearn_dask.flow.training import Outcome, check_failures, train
from prefect_sklearn_dask.flow.training_data import TrainingData, prepare_data
from prefect_sklearn_dask.masking import install_log_masking, mask
from prefect_sklearn_dask.ml import evaluate
from prefect_sklearn_dask.ml.evaluate import TrainReport
from prefect_sklearn_dask.ml.registry import DEFAULT_MODELS
from prefect_sklearn_dask.notify.improved import announce_improvement

FAILURE_KEY = "train-flow-failure"


def report_failure(flow, flow_run, state) -> None:
    """On failure, leave a markdown artifact saying what failed, beside the run."""
    create_markdown_artifact(
        key=FAILURE_KEY,
        markdown=mask(
            f"# train-flow run `{flow_run.name}` failed\n\n"
            f"**{state.name}**: {state.message}\n\n"
            f"Parameters: `{flow_run.parameters}`\n"
        ),
        description=f"Why flow run {flow_run.name} failed",
    )


@flow(
    name="train-flow",
    description="Train and compare scikit-learn classifiers in parallel.",
    on_failure=[report_failure],
)
@masked_failures
def train_flow(
    dataset: str = "synthetic",
    target: str | None = None,
    models: list[str] = list(DEFAULT_MODELS),  # noqa: B006 - Prefect parameters are copied
    runner: RunnerName = "dask",
    address: str | None = None,
    workers: int | None = None,
    cv: int = 0,
    test_size: float = 0.25,
    seed: int = 0,
    metric: Metric = "f1_macro",
    storage: str | None = None,
    max_failures: int | None = None,
    max_concurrent: int | None = None,
    adapt: str | None = None,
    cluster_config: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    upload_code: bool = False,
    performance_report: bool = True,
    cache: bool = True,
    reuse_fits: bool = False,
    search: Search = "none",
    n_iter: int = 10,
    search_space: dict[str, dict[str, Any]] | None = None,
    pruner: Pruner = "median",
    worker_memory: str | None = None,
) -> dict[str, Any]:
    """Train ``models`` on ``dataset`` with ``runner``, publish the comparison, persist the best.

    A model that fails is a failed row; the run fails only when none succeeds or more
    than ``max_failures`` fail. ``max_concurrent`` caps simultaneous fits through a
    Prefect global concurrency limit (shared by every run that sets it).

    Dask runs go to a new ``LocalCluster`` (``adapt="MIN:MAX"`` for an adaptive one), the
    scheduler at ``address`` (TLS with ``tls_*`` PEM paths) or the cluster a YAML
    ``cluster_config`` names; ``upload_code`` ships the project to workers that lack it.
    ``worker_memory`` (``1500MB``) is each new local worker's Dask memory limit. Each Dask
    run saves its performance report next to the run's model.

    ``dataset`` as a directory, glob or URL (``s3://``...) of Parquet/CSV files is
    partitioned data: it stays on the workers and trains ``xgb``/``sgd`` across them
    (:mod:`.partitioned_data`).

    With ``cache`` (default) every finished fit is persisted and a re-run with the same
    data and parameters reuses it while no identical run has completed (a run killed
    half-way resumes); ``reuse_fits`` also reuses a completed run's fits
    (:mod:`.fit_cache`); ``cache=False`` trains everything and writes nothing per fit.

    ``search`` (``grid``, ``random`` or ``halving``) makes each model one ``search-<model>``
    task run: ``n_iter`` candidates (random/halving) x ``cv`` folds (3 if 0) from the
    registry's space or ``search_space`` ({model: {param: [values] or "loguniform(a, b)"}}),
    the fits as plain Dask work (or threads), the winner refit and scored on the test set.
    ``optuna``: ``n_iter`` TPE trials, ``pruner`` stopping poor ones between folds.

    Returns a JSON-able summary: rows, best model, where it is stored, URLs, timings.
    """
    params = dict(locals())  # first line: the parameters, nothing else yet
    install_log_masking()  # also when served as a deployment, not started by flows/train.py
    faults.install_event_drop_filter()
    dropped_before = faults.EVENT_DROPS.dropped
    logger = get_run_logger()
    opts = RunOptions.from_params(**params)
    data = prepare_data(opts)
    logger.info(data.describe())
    cache = fit_cache.open_run_cache(
        opts.storage_root,
        data.cache_params(),
        opts.cv,
        opts.names,
        enabled=opts.cache,
        reuse=opts.reuse_fits,
    )
    run_id = str(flow_run.id)
    with open_runner(opts, run_id) as run:
        if run.dashboard:
            logger.info(f"Dask dashboard: {run.dashboard}")
        outcome = train(data, run, opts, cache, logger)
        # drawn by the scheduler while the results are published
        run.request_report(calling_code(params, flow_run.name))
        check_failures(outcome, opts.max_failures)
        ranked = evaluate.rank(outcome.reports, opts.metric)
        stored = store(ranked[0], data, opts, run_id, logger)
        summary = publish(ranked, stored, data, run, outcome, cache, opts, dropped_before)
    fit_cache.complete(cache)
    best = ranked[0]
    logger.info(
        f"best model {best.model} ({opts.metric}={getattr(best, opts.metric):.4f}) -> "
        f"{stored.model.record_path}"
    )
    return summary


def calling_code(params: dict[str, Any], run_name: str) -> str:
    """The call the performance report shows as its calling code: this flow run's, with
    any URL password or secret setting masked (the page is a file anyone may be sent)."""
    arguments = ",\n    ".join(f"{name}={value!r}" for name, value in params.items())
    return mask(f"# flow run {run_name}\ntrain_flow(\n    {arguments},\n)")


@dataclass(frozen=True)
class Stored:
    """The best model as saved: its manifest and where it lives."""

    manifest: dict[str, Any]
    model: StoredModel


def store(
    best: TrainReport, data: TrainingData, opts: RunOptions, run_id: str, logger: Any
) -> Stored:
    """Save the best model with its manifest, and say so when it beats the last one."""
    manifest = {
        "model": best.model,
        "params": best.params,
        "metric": opts.metric,
        "scores": {k: v for k, v in best.row().items() if k not in ("model", "params")},
        **data.manifest_fields(best),
        "flow_run_id": run_id,
    }
    stored = save_model(best.estimator, manifest, opts.storage_root, run_id)
    announce_improvement(manifest, opts.storage_root / MODEL_DIR, logger)
    return Stored(manifest, stored)


def comparison_rows(ranked: list[TrainReport], failures: dict[str, str]) -> list[dict[str, Any]]:
    rows = [{"rank": i, "status": "ok", **r.row()} for i, r in enumerate(ranked, start=1)]
    rows += [{"model": name, "status": "failed", "error": err} for name, err in failures.items()]
    return rows


def publish(
    ranked: list[TrainReport],
    stored: Stored,
    data: TrainingData,
    run: Run,
    outcome: Outcome,
    cache: fit_cache.FitCache | None,
    opts: RunOptions,
    dropped_before: int,
) -> dict[str, Any]:
    """The run's summary, published as artifacts and a comparison chart, and returned."""
    logger = get_run_logger()
    run_id = str(flow_run.id)
    report, model = run.report, stored.model
    summary: dict[str, Any] = {
        "flow_run_id": run_id,
        "flow_run_url": url_for("flow-run", obj_id=run_id),  # the UI route the engine logs
        "dashboard_url": run.dashboard,
        "performance_report": str(report) if report else None,  # written as the runner closes
        "performance_report_url": run.page_url(report) if report else None,
        "runner": opts.runner,
        "dask_cluster": describe_cluster(
            opts.runner, opts.address, opts.adapt, opts.cluster_config
        ),
        "metric": opts.metric,
        "dataset": data.summary(),
        "rows": comparison_rows(ranked, outcome.failures),
        "cache": fit_cache.summary(
            cache, opts.storage_root, outcome.reused, outcome.fits, opts.reuse_fits
        ),
        "best": ranked[0].row(),
        "model": {
            "record_path": str(model.record_path),
            "manifest_path": str(model.manifest_path),
            "sha256": model.sha256,
        },
        "predict_command": (
            f"python flows/predict.py --model {shlex.quote(str(model.manifest_path))} "
            + data.predict_args()
        ),
        "timings": {
            "runner_start_seconds": run.ready - run.started,
            "train_seconds": outcome.trained - run.ready,
        },
    }
    dropped = faults.EVENT_DROPS.dropped - dropped_before
    outage = faults.outage_warning(dropped, str(opts.storage_root))
    summary["server_outage"] = outage
    if outage:
        logger.warning(outage)
    artifacts.publish(summary)
    title = f"train-flow run {flow_run.name}: {data.source}, {opts.runner} runner"
    folder = model.record_path.parent
    summary["comparison_chart"] = publish_chart(
        ranked, stored.manifest["classes"], opts.metric, folder, title, run.page_url
    )
    return summary
