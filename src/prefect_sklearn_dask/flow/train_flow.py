"""``train-flow``: train several classifiers in parallel as Prefect tasks, compare, keep the best.

    from prefect_sklearn_dask.flow.train_flow import train_flow
    summary = train_flow(dataset="iris", models=["rf", "logreg"], runner="threads")
    summary["best"]["model"], summary["model"]["record_path"]

No ``from __future__ import annotations`` here: a served deployment validates its
parameters from these annotations, which must be real types, not strings.
"""

import contextlib
import shlex
import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for

from prefect_sklearn_dask.bridge import faults
from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner
from prefect_sklearn_dask.bridge.runners import (
    RunnerName,
    build_task_runner,
    dask_client,
    describe_cluster,
)
from prefect_sklearn_dask.bridge.workers import flush_worker_logs, prepare_workers
from prefect_sklearn_dask.flow import artifacts
from prefect_sklearn_dask.flow.comparison import prewarm_chart, publish_chart
from prefect_sklearn_dask.flow.fit_cache import FitCache, open_fit_cache
from prefect_sklearn_dask.flow.masked_failures import masked_failures
from prefect_sklearn_dask.flow.model_store import MODEL_DIR, default_storage, save_model
from prefect_sklearn_dask.flow.search_task import search_inputs
from prefect_sklearn_dask.flow.tasks import FIT_CACHE, NO_FIT_CACHE, train_model
from prefect_sklearn_dask.masking import install_log_masking, mask
from prefect_sklearn_dask.ml.data import DatasetRef, prepare
from prefect_sklearn_dask.ml.evaluate import TrainReport, rank
from prefect_sklearn_dask.ml.registry import DEFAULT_MODELS, by_cost, parse_models
from prefect_sklearn_dask.notify.improved import announce_improvement

Metric = Literal["f1_macro", "accuracy", "roc_auc"]
Search = Literal["none", "grid", "random", "halving"]
CONCURRENCY_LIMIT = "train-model"
FAILURE_KEY = "train-flow-failure"


class TooManyFailures(RuntimeError):
    """More models failed than the run allows."""


def check_failures(failures: dict[str, str], trained: int, max_failures: int | None) -> None:
    """Fail the run when nothing trained, or more models failed than ``max_failures``."""
    if not trained or (max_failures is not None and len(failures) > max_failures):
        detail = "; ".join(f"{name}: {err}" for name, err in failures.items())
        allowed = "no model succeeded" if not trained else f"more than {max_failures} allowed"
        raise TooManyFailures(f"{len(failures)} model(s) failed ({allowed}): {detail}")


def set_concurrency_limit(limit: int) -> str:
    """Create or resize the global concurrency limit every training task holds a slot of."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(CONCURRENCY_LIMIT, limit)
    return CONCURRENCY_LIMIT


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


REPORT_NAME = "dask-performance-report.html"
CACHE_DIR = "fit-cache"


def fit_task(fit_cache: FitCache | None):
    """``train_model`` persisting each fit in ``fit_cache`` (or not at all, with None).

    The cache lives beside the models, in local storage every process of a local run
    can read; without one nothing is written or looked up (benchmarks).
    """
    if fit_cache is None:
        return train_model.with_options(**NO_FIT_CACHE)
    # A Path, not an unsaved LocalFileSystem block: Prefect turns it into local storage
    # in each process without registering a block on the server.
    return train_model.with_options(
        cache_policy=FIT_CACHE + fit_cache.policy(), result_storage=fit_cache.root
    )


def open_run_cache(
    storage_root: Path, data: DatasetRef, names: list[str], cv: int, reuse: bool
) -> FitCache:
    """The run's fit cache: its parameter set is everything that decides its fits."""
    params = {"data": data.fingerprint, "target": data.target, "test_size": data.test_size}
    params |= {"seed": data.seed, "cv": cv, "models": sorted(names)}
    return open_fit_cache(storage_root / CACHE_DIR, params, reuse)


def gather(
    futures: dict[PrefectFuture, str], logger: Any, client: Any = None, task: Any = None
) -> tuple[list[TrainReport], dict[str, str], int]:
    """Collect results as they finish, logging a progress line for each.

    A model that raises becomes a failed row, not a failed comparison; one whose Dask
    worker kept dying is also marked ``Failed`` on the server (Prefect leaves it
    Running). A lost scheduler raises ``SchedulerLost`` at once.
    Returns the reports, the failures and how many results came from the fit cache
    (task runs whose final state is Prefect's ``Cached``).
    """
    reports: list[TrainReport] = []
    failures: dict[str, str] = {}
    reused = 0
    total = len(futures)
    for done, future in enumerate(as_completed(list(futures)), start=1):
        name = futures[future]
        try:
            report = future.result()
        except Exception as exc:
            if client is not None and faults.scheduler_lost(exc):
                raise faults.lost_scheduler_error(client, len(reports), total) from None
            failures[name] = mask(faults.describe(name, exc, client))
            if faults.orphaned(future):
                faults.mark_failed(
                    future.task_run_id, failures[name], task, flow_run.id, f"train-{name}", logger
                )
            logger.warning(f"[{done}/{total}] {name:<7} FAILED {failures[name]}")
            continue
        reports.append(report)
        cached = future.state.name == "Cached"
        reused += cached
        logger.info(
            f"[{done}/{total}] {name:<7} f1={report.f1_macro:.4f} "
            f"acc={report.accuracy:.4f} fit={report.fit_seconds:.2f}s"
            + (" (cached)" if cached else "")
        )
    return reports, failures, reused


def comparison_rows(ranked: list[TrainReport], failures: dict[str, str]) -> list[dict[str, Any]]:
    rows = [{"rank": i, "status": "ok", **r.row()} for i, r in enumerate(ranked, start=1)]
    rows += [{"model": name, "status": "failed", "error": err} for name, err in failures.items()]
    return rows


def manifest_for(best: TrainReport, data: DatasetRef, metric: str, run_id: str) -> dict[str, Any]:
    from prefect_sklearn_dask.ml.data import load_split

    split = load_split(data)
    return {
        "model": best.model,
        "params": best.params,
        "metric": metric,
        "scores": {k: v for k, v in best.row().items() if k not in ("model", "params")},
        "classes": list(split.classes),
        "features": [str(c) for c in split.X_train.columns],
        "target": data.target,
        "dataset": data.source,
        "dataset_sha256": data.fingerprint,
        "flow_run_id": run_id,
    }


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
) -> dict[str, Any]:
    """Train ``models`` on ``dataset`` with ``runner``, publish the comparison, persist the best.

    A model that fails is a failed row; the run fails only when none succeeds or more
    than ``max_failures`` fail. ``max_concurrent`` caps simultaneous fits through a
    Prefect global concurrency limit (shared by every run that sets it).

    Dask runs go to a new ``LocalCluster`` (``adapt="MIN:MAX"`` for an adaptive one), the
    scheduler at ``address`` (TLS with ``tls_*`` PEM paths) or the cluster a YAML
    ``cluster_config`` names; ``upload_code`` ships the project to workers that lack it.
    Each Dask run saves its performance report next to the run's model.

    With ``cache`` (default) every finished fit is persisted and a re-run with the same
    data and parameters reuses it while no identical run has completed (a run killed
    half-way resumes); ``reuse_fits`` also reuses a completed run's fits
    (:mod:`.fit_cache`); ``cache=False`` trains everything and writes nothing per fit.

    ``search`` (``grid``, ``random`` or ``halving``) makes each model one ``search-<model>``
    task run: ``n_iter`` candidates (random/halving) x ``cv`` folds (3 if 0) from the
    registry's space or ``search_space`` ({model: {param: [values] or "loguniform(a, b)"}}),
    the fits as plain Dask work (or threads), the winner refit and scored on the test set.

    Returns a JSON-able summary: rows, best model, where it is stored, URLs, timings.
    """
    from prefect.settings import get_current_settings

    install_log_masking()  # also when served as a deployment, not started by flows/train.py
    faults.install_event_drop_filter()
    dropped_before = faults.EVENT_DROPS.dropped
    logger = get_run_logger()
    names = parse_models(models)
    searching = search_inputs(search, n_iter, cv, search_space, seed, metric, max_concurrent)
    data = prepare(dataset, target, test_size, seed)
    logger.info(
        f"dataset {data.source}: {data.n_rows} rows x {data.n_features} features, "
        f"{data.n_classes} classes (sha256 {data.fingerprint[:12]})"
    )
    limit = set_concurrency_limit(max_concurrent) if max_concurrent else None
    run_id = str(flow_run.id)
    storage_root = Path(storage).expanduser() if storage else default_storage()
    fit_cache = open_run_cache(storage_root, data, names, cv, reuse_fits) if cache else None
    report = None
    if runner == "dask" and performance_report:
        report = storage_root / MODEL_DIR / run_id / REPORT_NAME
        report.parent.mkdir(parents=True, exist_ok=True)
    api_url = get_current_settings().api.url
    started = time.perf_counter()
    task_runner = build_task_runner(
        runner,
        workers,
        address,
        adapt=adapt,
        cluster_config=cluster_config,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        performance_report_path=str(report) if report else None,
    )
    try:
        with task_runner:
            client = dask_client(task_runner)
            dashboard = client.dashboard_link if client is not None else None
            if client is not None:
                prepare_workers(client, str(api_url) if api_url else None, upload_code)
            ready = time.perf_counter()
            if isinstance(task_runner, FastDaskTaskRunner) and not searching:
                # searches send no Prefect task run to the workers (flow/search_task.py)
                with faults.lost_scheduler_fails_fast(client, 0, len(names)):
                    task_runner.warm_workers()
            if dashboard:
                logger.info(f"Dask dashboard: {dashboard}")
            task = fit_task(fit_cache)

            def inputs(name: str) -> dict[str, Any]:
                return {"model": name, "data": data, "seed": seed, "cv": cv, "limit": limit}

            with contextlib.ExitStack() as stack:
                submit_to = task_runner
                if searching:
                    # fits of a search follow the run's fit-cache generation (flow/fit_cache.py)
                    search_dir = fit_cache.root / fit_cache.namespace if fit_cache else None
                    task, inputs = searching.submission(data, search_dir, runner, workers)
                    submit_to = stack.enter_context(
                        searching.drivers(task_runner, client, len(names))
                    )
                futures = {submit_to.submit(task, inputs(name)): name for name in by_cost(names)}
                prewarm_chart()  # the chart's imports while the fits run
                reports, failures, reused = gather(futures, logger, client, task)
            trained = time.perf_counter()
            fits = len(futures)
            if searching:
                reused, fits = searching.fits(reports)
            if fit_cache is not None:
                logger.info(f"reused {reused} of {fits} fits from cache")
                logger.info(fit_cache.describe(reused, fits))
            if client is not None:
                flush_worker_logs(client)
    except Exception as exc:
        # Closing a runner whose scheduler is gone raises its own error over ours.
        lost = faults.find_lost(exc)
        if lost is not None:
            raise lost from None
        raise
    check_failures(failures, len(reports), max_failures)

    ranked = rank(reports, metric)
    best = ranked[0]
    manifest = manifest_for(best, data, metric, run_id)
    stored = save_model(best.estimator, manifest, storage_root, run_id)
    announce_improvement(manifest, storage_root / MODEL_DIR, logger)
    summary: dict[str, Any] = {
        "flow_run_id": run_id,
        "flow_run_url": url_for("flow-run", obj_id=run_id),  # the UI route the engine logs
        "dashboard_url": dashboard,
        "performance_report": str(report) if report and report.is_file() else None,
        "runner": runner,
        "dask_cluster": describe_cluster(runner, address, adapt, cluster_config),
        "metric": metric,
        "dataset": {k: getattr(data, k) for k in ("source", "n_rows", "n_features", "n_classes")},
        "rows": comparison_rows(ranked, failures),
        "cache": {
            "enabled": cache,
            "reused": reused,
            "fits": fits,
            "path": str(storage_root / CACHE_DIR) if cache else None,
            "reuse_fits": reuse_fits,
            "said": fit_cache.describe(reused, fits) if fit_cache else None,
        },
        "best": best.row(),
        "model": {
            "record_path": str(stored.record_path),
            "manifest_path": str(stored.manifest_path),
            "sha256": stored.sha256,
        },
        "predict_command": (
            f"python flows/predict.py --model {shlex.quote(str(stored.manifest_path))} "
            "--data YOUR.csv"
        ),
        "timings": {
            "runner_start_seconds": ready - started,
            "train_seconds": trained - ready,
        },
    }
    outage = faults.outage_warning(faults.EVENT_DROPS.dropped - dropped_before, str(storage_root))
    summary["server_outage"] = outage
    if outage:
        logger.warning(outage)
    artifacts.publish(summary)
    title = f"train-flow run {flow_run.name}: {data.source}, {runner} runner"
    folder = stored.record_path.parent
    summary["comparison_chart"] = publish_chart(ranked, manifest["classes"], metric, folder, title)
    if fit_cache is not None:
        fit_cache.complete()
    logger.info(
        f"best model {best.model} ({metric}={getattr(best, metric):.4f}) -> {stored.record_path}"
    )
    return summary
