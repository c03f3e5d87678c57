"""``benchmarks/compare.py``: every backend side by side on the same workloads.

Argument parsing and the suite's call; the suite is :mod:`prefect_sklearn_dask.benchmarks`
(``benchmarks/README.md``, "Adding rows"). Usage is in ``benchmarks/compare.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from prefect_sklearn_dask.cli import HelpFormatter, fast_imports, quiet_environment, run_cli

quiet_environment()

with fast_imports():
    from prefect_sklearn_dask.benchmarks.catalog import (
        BACKENDS,
        DESCRIPTIONS,
        WORKLOADS,
    )
    from prefect_sklearn_dask.ml.errors import UserError
    from prefect_sklearn_dask.server.process import DEFAULT_PORT

# Result files (JSON and CSV carry the git commit they ran at) go to the checkout's
# benchmarks/results/, where the runs the READMEs quote are committed.
RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


def _names(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UserError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(allowed)}"
        )
    return list(dict.fromkeys(names))


def _workers(value: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--workers takes counts like 1,2,4; got {value!r}") from None
    if not counts or min(counts) < 1:
        raise UserError(f"--workers takes counts >= 1 like 1,2,4; got {value!r}")
    return sorted(set(counts))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from prefect_sklearn_dask.cluster.local import default_workers

    parser = argparse.ArgumentParser(
        prog="python benchmarks/compare.py",
        description="Run the same workloads on every backend (sequential, Prefect threads, "
        "Prefect on Dask, raw Dask, joblib/scikit-learn) and report medians, ratios to raw "
        "Dask, parallel efficiency and the project's performance goals.",
        formatter_class=HelpFormatter,
        epilog="backends: " + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()),
    )
    parser.add_argument("--quick", action="store_true", help="small workloads, 1 repeat (CI)")
    parser.add_argument(
        "--workers", default=str(default_workers()), help="comma-separated worker counts"
    )
    parser.add_argument("--repeats", type=int, help="repeats per backend (default 3; quick 1)")
    parser.add_argument(
        "--workload",
        default=",".join(WORKLOADS),
        help=f"from: {', '.join(WORKLOADS)} (search: the search workloads, benchmarks/README.md)",
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="subset of backends to run")
    parser.add_argument("--out", default=str(RESULTS), help="folder for JSON, CSV and the chart")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one backend run may take"
    )
    parser.add_argument(
        "--server-port",
        type=int,
        default=DEFAULT_PORT,
        help="port of the project's Prefect server (when PREFECT_API_URL is not set)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal fails")
    parser.add_argument(
        "--rows",
        type=int,
        help="partitioned workload: rows of synthetic Parquet (default: ~1.5x one worker's "
        "free memory under --worker-memory)",
    )
    parser.add_argument(
        "--worker-memory",
        default="1500MB",
        help="partitioned workload: memory limit of each worker of its clusters",
    )
    args = parser.parse_args(argv)
    args.workers = _workers(args.workers)
    args.workloads = _names(args.workload, WORKLOADS, "workload")
    args.backends = _names(args.backends, BACKENDS, "backend")
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.rows is not None and args.rows < 100:
        raise UserError(f"--rows must be at least 100, got {args.rows}")
    from prefect_sklearn_dask.benchmarks.partitioned import configure
    from prefect_sklearn_dask.cluster.local import check_memory

    configure(args.rows, check_memory(args.worker_memory))
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from prefect_sklearn_dask.server.process import ensure_server

    started = time.perf_counter()
    server = ensure_server(port=args.server_port)
    server_s = time.perf_counter() - started
    print(
        f"Prefect server {server.ui_url} ({'started' if server.started else 'reused'}, "
        f"{server_s:.1f} s)",
        flush=True,
    )

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_sklearn_dask.benchmarks.suite import benchmark_suite

    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Settings were loaded at import; the flow and this process must use the server's URL
    # (worker processes get it from the environment ensure_server exported).
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        report = run_suite(benchmark_suite, args, stamp, server, server_s)
    return report_and_exit(report, args)


def run_suite(benchmark_suite, args: argparse.Namespace, stamp: str, server, server_s: float):
    return benchmark_suite(
        workloads=args.workloads,
        workers=args.workers,
        repeats=args.repeats,
        quick=args.quick,
        backends=args.backends,
        out=str(Path(args.out).expanduser().resolve()),
        timeout=args.timeout,
        stamp=stamp,
        server={"url": server.ui_url, "started": server.started, "seconds": server_s},
    )


def report_and_exit(report: dict, args: argparse.Namespace) -> int:
    from prefect_sklearn_dask.benchmarks.report import scaling_lines, text_table

    print()
    print(text_table(report["rows"]))
    print("\nGoals:")
    for goal in report["goals"]:
        print(f"  {goal['line']}")
    scaling = scaling_lines(report["rows"])
    if scaling:
        print("\nScaling (median wall by workers):")
        for line in scaling:
            print(f"  {line}")
    print(f"\nfiles: {report['files']['json']}\n       {report['files']['csv']}")
    print(f"chart: {report['files']['html']}")
    print(f"flow run: {report['flow_run_url']}")
    failed = [g for g in report["goals"] if g["passed"] is False]
    return 1 if args.check and failed else 0


def cli() -> None:
    """``benchmarks/compare.py``: exit with ``main``'s code."""
    sys.exit(run_cli(main))
