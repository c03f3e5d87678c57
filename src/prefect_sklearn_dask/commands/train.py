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

from prefect_sklearn_dask.cli import HelpFormatter, fast_imports, quiet_environment, run_cli

quiet_environment()

with fast_imports():
    from prefect_sklearn_dask.bridge.workers import require_project_modules
    from prefect_sklearn_dask.cluster.local import running_cluster
    from prefect_sklearn_dask.cluster.remote import check_scheduler, tls_security
    from prefect_sklearn_dask.commands.options import (
        add_training_arguments,
        flow_parameters,
        validate_training_args,
    )
    from prefect_sklearn_dask.masking import install_log_masking, mask
    from prefect_sklearn_dask.ml.errors import UserError
    from prefect_sklearn_dask.server.process import DEFAULT_PORT, ensure_server, is_healthy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python flows/train.py",
        description="Train several scikit-learn classifiers in parallel as Prefect tasks and "
        "compare them. Results go to the Prefect server (started on 127.0.0.1 if "
        "PREFECT_API_URL is not set); the best model is saved as a Prefect result.",
        formatter_class=HelpFormatter,
    )
    add_training_arguments(parser)
    parser.add_argument(
        "--new-cluster",
        action="store_true",
        help="start a new local cluster even when `cluster/local.py start` runs one",
    )
    parser.add_argument(
        "--server-port", type=int, default=DEFAULT_PORT, help="port of the project's Prefect server"
    )
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    return parser.parse_args(argv)


def preflight(args: argparse.Namespace) -> None:
    """Every check that can fail on user input, before any server, cluster or file."""
    validate_training_args(args)
    if args.address:
        probe = None if args.upload_code else require_project_modules
        check_scheduler(
            args.address,
            security=tls_security(args.tls_ca, args.tls_cert, args.tls_key),
            probe=probe,
        )


def reuse_long_lived(args: argparse.Namespace) -> bool:
    """Point a plain ``--runner dask`` run at the cluster ``cluster/local.py start`` keeps."""
    if args.runner != "dask" or args.address or args.adapt or args.cluster_config:
        return False
    if args.worker_memory:  # a new cluster, its workers sized as asked
        return False
    if args.new_cluster:
        return False
    state = running_cluster()
    if state is None:
        return False
    args.address = state.address
    ignored = f"; --workers {args.workers} ignored" if args.workers else ""
    print(
        f"reusing the long-lived Dask cluster at {state.address} (dashboard "
        f"{state.dashboard_url}){ignored}; --new-cluster starts a fresh one",
        file=sys.stderr,
    )
    return True


def render(summary: dict) -> str:
    """The comparison table and where everything went, for the terminal."""
    from prefect_sklearn_dask.flow.artifacts import table_rows

    rows = table_rows(summary["rows"])
    columns = ["rank", "model", "status", "accuracy", "f1_macro", "roc_auc", "fit_seconds"]
    if any(r["cv_f1_macro_mean"] != "" for r in rows):
        columns.append("cv_f1_macro_mean")
    if "fits" in rows[0]:  # a search: its CV score, fits and the best params
        columns += ["cv_mean_std", "fits", "search_seconds", "params"]
    if "peak_worker_mb" in rows[0]:  # partitioned data: its work spans the workers
        columns.append("peak_worker_mb")
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
        lines.append(f"cache        {cache['said']} ({cache['path']})")
    if summary.get("dashboard_url"):
        lines.append(f"dashboard    {summary['dashboard_url']} ({dashboard_note(summary)})")
    if summary.get("performance_report"):
        lines.append(f"dask report  {summary['performance_report']}")
    chart = summary.get("comparison_chart") or {}
    if chart:
        lines.append(f"chart        {chart['url'] or chart['path']}")
    if summary.get("server_outage"):
        lines.append(f"warning      {summary['server_outage']}")
    lines += [
        f"model        {summary['model']['record_path']}",
        f"sha256       {summary['model']['sha256']}",
        f"predict with {summary['predict_command']}",
    ]
    return "\n".join(lines)


def dashboard_note(summary: dict) -> str:
    """Whether the printed dashboard still opens: only a long-lived cluster outlives the run."""
    if summary.get("long_lived_cluster"):
        return "the long-lived cluster: `python cluster/local.py stop` or `make stop` ends it"
    if (summary.get("dask_cluster") or "").startswith("scheduler at"):
        return "the cluster you gave"
    return "closed with the run; `python cluster/local.py start` keeps a cluster open"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_log_masking()
    preflight(args)
    long_lived = reuse_long_lived(args)
    server = ensure_server(port=args.server_port)
    print(
        f"Prefect server {server.ui_url} ({'started' if server.started else 'reused'})",
        file=sys.stderr,
    )

    started = time.perf_counter()
    try:
        state = _run_flow(args, server.api_url)
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
    summary["long_lived_cluster"] = long_lived
    print(mask(json.dumps(summary, indent=2, default=str) if args.json else render(summary)))
    return 0


def _server_lost(api_url: str, args: argparse.Namespace, exc: Exception | None) -> None:
    """The Prefect server went away for longer than Prefect's retries: one line, exit 1.

    ``os._exit``: at a normal exit Prefect's event worker would retry the dead server
    for minutes more. Every finished fit is already in the fit cache on disk.
    """
    from prefect_sklearn_dask.flow.fit_cache import CACHE_DIR
    from prefect_sklearn_dask.flow.model_store import default_storage

    storage = Path(args.storage).expanduser() if args.storage else default_storage()
    why = f" ({type(exc).__name__})" if exc is not None else ""
    parts = [f"error: lost the Prefect server at {api_url} during the run{why}"]
    if args.cache:
        parts.append(f"finished fits are cached under {storage / CACHE_DIR}")
    parts.append("start the server and run the same command again to finish")
    print(mask("; ".join(parts)), file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)


def _run_flow(args: argparse.Namespace, api_url: str):
    with fast_imports():
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from prefect_sklearn_dask.flow.train_flow import train_flow

    with temporary_settings({PREFECT_API_URL: api_url}):
        return train_flow(**flow_parameters(args), return_state=True)


def _fail_run(state) -> int:
    """Exit 1 with the reason; bad input found inside the run (a partition that only the
    cluster reads, a class count only its pass sees) is exit 2, as before a run starts."""
    try:
        state.result()
    except UserError as exc:
        print(mask(f"error: {exc}"), file=sys.stderr)
        return 2
    except Exception as exc:
        print(mask(f"error: the flow run failed: {type(exc).__name__}: {exc}"), file=sys.stderr)
    return 1


def cli() -> None:
    """The console script (and ``flows/*.py``): exit with ``main``'s code."""
    sys.exit(run_cli(main))
