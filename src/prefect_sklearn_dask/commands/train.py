"""Train and compare classifiers with Prefect, on threads or a Dask cluster.

python flows/train.py --runner dask                       # the long-lived cluster, or a new one
python flows/train.py --runner dask --address tcp://127.0.0.1:8786
python flows/train.py --runner dask --address tls://host:8786 --tls-ca ca.pem --tls-cert c.pem \
    --tls-key c.key
python flows/train.py --runner dask --adapt 1:8           # adaptive local cluster
python flows/train.py --runner dask --cluster-config cluster/configs/slurm.yaml
python flows/train.py --runner threads
python flows/train.py --dataset data.csv --target label --models rf,logreg,hgb --cv 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from prefect_sklearn_dask.cli import quiet_environment, run_cli

quiet_environment()

from prefect_sklearn_dask.bridge.runners import RUNNERS, check_cluster_options  # noqa: E402
from prefect_sklearn_dask.bridge.workers import require_project_modules  # noqa: E402
from prefect_sklearn_dask.cluster.adaptive import parse_adapt  # noqa: E402
from prefect_sklearn_dask.cluster.config import validate as validate_config  # noqa: E402
from prefect_sklearn_dask.cluster.local import running_cluster  # noqa: E402
from prefect_sklearn_dask.cluster.remote import check_address, check_scheduler  # noqa: E402
from prefect_sklearn_dask.commands import search_options  # noqa: E402
from prefect_sklearn_dask.masking import install_log_masking, mask  # noqa: E402
from prefect_sklearn_dask.ml.data import BUILTIN_LOADERS, prepare  # noqa: E402
from prefect_sklearn_dask.ml.errors import UserError  # noqa: E402
from prefect_sklearn_dask.ml.evaluate import METRICS  # noqa: E402
from prefect_sklearn_dask.ml.registry import DEFAULT_MODELS, REGISTRY, parse_models  # noqa: E402
from prefect_sklearn_dask.server.process import DEFAULT_PORT, ensure_server, is_healthy  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python flows/train.py",
        description="Train several scikit-learn classifiers in parallel as Prefect tasks and "
        "compare them. Results go to the Prefect server (started on 127.0.0.1 if "
        "PREFECT_API_URL is not set); the best model is saved as a Prefect result.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        default="synthetic",
        help=f"{', '.join(BUILTIN_LOADERS)}, synthetic[:n_samples=N,n_features=M,n_classes=K], "
        "or a .csv/.parquet file",
    )
    parser.add_argument("--target", help="target column of a CSV/Parquet file")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated, from: {', '.join(REGISTRY)}",
    )
    parser.add_argument("--runner", choices=RUNNERS, default="dask", help="where tasks run")
    parser.add_argument(
        "--address", help="Dask scheduler to use instead of a new local cluster (--runner dask)"
    )
    parser.add_argument(
        "--tls-ca", help="CA certificate (PEM) the TLS scheduler's cert is signed by"
    )
    parser.add_argument("--tls-cert", help="client certificate (PEM) for a TLS scheduler")
    parser.add_argument("--tls-key", help="private key (PEM) of --tls-cert")
    parser.add_argument(
        "--adapt", metavar="MIN:MAX", help="adaptive local Dask cluster of MIN to MAX workers"
    )
    parser.add_argument(
        "--cluster-config",
        metavar="YAML",
        help="Dask cluster class + kwargs from a YAML file (cluster/configs/: slurm, pbs, "
        "kubernetes)",
    )
    parser.add_argument(
        "--new-cluster",
        action="store_true",
        help="start a new local cluster even when `cluster/local.py start` runs one",
    )
    parser.add_argument(
        "--upload-code",
        action="store_true",
        help="ship this project's code to the Dask workers (for workers that lack it)",
    )
    parser.add_argument(
        "--no-performance-report",
        dest="performance_report",
        action="store_false",
        help="skip the per-run Dask performance report (HTML next to the model)",
    )
    parser.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="train every model afresh and persist no per-fit results (by default finished "
        "fits are cached, so a re-run after a crash trains only what is missing)",
    )
    parser.add_argument(
        "--workers", type=int, help="threads or Dask worker processes (default: one per core)"
    )
    parser.add_argument("--cv", type=int, default=0, help="k-fold cross-validation (0: off)")
    parser.add_argument("--test-size", type=float, default=0.25, help="held-out fraction")
    parser.add_argument("--seed", type=int, default=0, help="random seed for data and models")
    parser.add_argument("--metric", choices=METRICS, default="f1_macro", help="ranks the models")
    parser.add_argument(
        "--max-failures",
        type=int,
        help="fail the run when more models than this fail (default: only if all fail)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        help="at most this many fits at once (a Prefect global concurrency limit)",
    )
    parser.add_argument("--storage", help="result storage folder (default: $PREFECT_HOME/storage)")
    parser.add_argument(
        "--server-port", type=int, default=DEFAULT_PORT, help="port of the project's Prefect server"
    )
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    search_options.add_search_arguments(parser)
    return parser.parse_args(argv)


def preflight(args: argparse.Namespace) -> list[str]:
    """Every check that can fail on user input, before any server, cluster or file."""
    search_options.validate(args)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.cv < 0 or args.cv == 1:
        raise UserError(f"--cv must be 0 (off) or at least 2, got {args.cv}")
    for flag in ("max_failures", "max_concurrent"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "max_failures" else 1):
            raise UserError(f"--{flag.replace('_', '-')} is too small: {value}")
    cluster_flags = {
        "--address": args.address,
        "--adapt": args.adapt,
        "--cluster-config": args.cluster_config,
        "--tls-ca": args.tls_ca,
        "--tls-cert": args.tls_cert,
        "--tls-key": args.tls_key,
        "--upload-code": args.upload_code,
    }
    for flag, value in cluster_flags.items():
        if value and args.runner != "dask":
            raise UserError(f"{flag} needs --runner dask")
    security = check_cluster_options(
        args.address, args.adapt, args.cluster_config, args.tls_ca, args.tls_cert, args.tls_key
    )
    models = parse_models(args.models)
    prepare(args.dataset, args.target, args.test_size, args.seed)
    if args.adapt:
        parse_adapt(args.adapt)
    if args.cluster_config:
        validate_config(args.cluster_config)
    if args.address:
        args.address = check_address(args.address, security)
        probe = None if args.upload_code else require_project_modules
        check_scheduler(args.address, security=security, probe=probe)
    return models


def reuse_long_lived(args: argparse.Namespace) -> None:
    """Point a plain ``--runner dask`` run at the cluster ``cluster/local.py start`` keeps."""
    if args.runner != "dask" or args.address or args.adapt or args.cluster_config:
        return
    if args.new_cluster:
        return
    state = running_cluster()
    if state is None:
        return
    args.address = state.address
    ignored = f"; --workers {args.workers} ignored" if args.workers else ""
    print(
        f"reusing the long-lived Dask cluster at {state.address} (dashboard "
        f"{state.dashboard_url}){ignored}; --new-cluster starts a fresh one",
        file=sys.stderr,
    )


def render(summary: dict) -> str:
    """The comparison table and where everything went, for the terminal."""
    from prefect_sklearn_dask.flow.artifacts import table_rows

    rows = table_rows(summary["rows"])
    columns = ["rank", "model", "status", "accuracy", "f1_macro", "roc_auc", "fit_seconds"]
    if any(r["cv_f1_macro_mean"] != "" for r in rows):
        columns.append("cv_f1_macro_mean")
    if "fits" in rows[0]:  # a search: its CV score, fits and the best params
        columns += ["cv_mean_std", "fits", "search_seconds", "params"]
    if any(r["status"] != "ok" for r in rows):
        columns.append("error")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    timings = summary["timings"]
    cluster = f" ({summary['dask_cluster']})" if summary.get("dask_cluster") else ""
    lines += [
        "",
        f"best model   {summary['best']['model']} ({summary['metric']}="
        f"{summary['best'][summary['metric']]:.4f})",
        f"runner       {summary['runner']}{cluster}: "
        f"start {timings['runner_start_seconds']:.2f} s, train {timings['train_seconds']:.2f} s",
        f"flow run     {summary['flow_run_url']}",
    ]
    cache = summary.get("cache") or {}
    if cache.get("enabled"):
        lines.append(
            f"cache        reused {cache['reused']} of {cache['fits']} fits from cache "
            f"({cache['path']}; --no-cache to retrain all)"
        )
    if summary.get("dashboard_url"):
        lines.append(f"dashboard    {summary['dashboard_url']} (live while the cluster runs)")
    if summary.get("performance_report"):
        lines.append(f"dask report  {summary['performance_report']}")
    if summary.get("server_outage"):
        lines.append(f"warning      {summary['server_outage']}")
    lines += [
        f"model        {summary['model']['record_path']}",
        f"sha256       {summary['model']['sha256']}",
        f"predict with {summary['predict_command']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_log_masking()
    models = preflight(args)
    reuse_long_lived(args)
    server = ensure_server(port=args.server_port)
    print(
        f"Prefect server {server.ui_url} ({'started' if server.started else 'reused'})",
        file=sys.stderr,
    )

    started = time.perf_counter()
    try:
        state = _run_flow(args, models, server.api_url)
    except Exception as exc:
        if is_healthy(server.api_url):
            raise
        _server_lost(server.api_url, args, exc)
    if not state.is_completed():
        if not is_healthy(server.api_url):
            _server_lost(server.api_url, args, None)
        return _fail_run(state)
    summary = state.result()
    summary["timings"]["wall_seconds"] = time.perf_counter() - started
    print(mask(json.dumps(summary, indent=2, default=str) if args.json else render(summary)))
    return 0


def _server_lost(api_url: str, args: argparse.Namespace, exc: Exception | None) -> None:
    """The Prefect server went away for longer than Prefect's retries: one line, exit 1.

    ``os._exit``: at a normal exit Prefect's event worker would retry the dead server
    for minutes more. Every finished fit is already in the fit cache on disk.
    """
    from prefect_sklearn_dask.flow.model_store import default_storage
    from prefect_sklearn_dask.flow.train_flow import CACHE_DIR

    storage = Path(args.storage).expanduser() if args.storage else default_storage()
    why = f" ({type(exc).__name__})" if exc is not None else ""
    parts = [f"error: lost the Prefect server at {api_url} during the run{why}"]
    if args.cache:
        parts.append(f"finished fits are cached under {storage / CACHE_DIR}")
    parts.append("start the server and run the same command again to finish")
    print(mask("; ".join(parts)), file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)


def _run_flow(args: argparse.Namespace, models: list[str], api_url: str):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_sklearn_dask.flow.train_flow import train_flow

    with temporary_settings({PREFECT_API_URL: api_url}):
        return train_flow(
            dataset=args.dataset,
            target=args.target,
            models=models,
            runner=args.runner,
            address=args.address,
            workers=args.workers,
            cv=args.cv,
            test_size=args.test_size,
            seed=args.seed,
            metric=args.metric,
            storage=args.storage,
            max_failures=args.max_failures,
            max_concurrent=args.max_concurrent,
            adapt=args.adapt,
            cluster_config=args.cluster_config,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            upload_code=args.upload_code,
            performance_report=args.performance_report,
            cache=args.cache,
            **search_options.flow_parameters(args),
            return_state=True,
        )


def _fail_run(state) -> int:
    try:
        state.result()
    except Exception as exc:
        print(mask(f"error: the flow run failed: {type(exc).__name__}: {exc}"), file=sys.stderr)
    return 1


def cli() -> None:
    """The console script (and ``flows/*.py``): exit with ``main``'s code."""
    sys.exit(run_cli(main))
