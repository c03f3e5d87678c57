"""The training options, defined and validated once for every command that starts train-flow.

``flows/train.py`` runs the flow now with them; ``flows/serve.py`` stores them as the
deployment's default parameters, so a nightly schedule trains on the user's data and
cluster, and a bad value is an ``error:`` line when serving, not a failed run at 3 a.m.

    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    parameters = validate_training_args(parser.parse_args())   # train_flow(**parameters)

An add-on group (e.g. hyper-parameter search) is one ``add_..._arguments(parser)`` line
in :func:`add_training_arguments` and its checks one line in :func:`validate_training_args`;
an option whose ``dest`` names a ``train_flow`` parameter is passed on by itself.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect_sklearn_dask.bridge.runners import RUNNERS, check_cluster_options
from prefect_sklearn_dask.cluster.adaptive import parse_adapt
from prefect_sklearn_dask.cluster.config import validate as validate_config
from prefect_sklearn_dask.cluster.remote import check_address
from prefect_sklearn_dask.commands import search_options
from prefect_sklearn_dask.ml.data import BUILTIN_LOADERS
from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.ml.evaluate import METRICS
from prefect_sklearn_dask.ml.registry import DEFAULT_MODELS, REGISTRY, parse_models


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option that becomes a ``train_flow`` parameter."""
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
        "--reuse-fits",
        action="store_true",
        help="also reuse the fits of an identical run that completed (by default a re-run "
        "after a completed run trains again)",
    )
    parser.add_argument(
        "--workers", type=int, help="threads or Dask worker processes (default: one per core)"
    )
    parser.add_argument(
        "--cv", type=int, default=0, help="k-fold cross-validation (0: off, the default)"
    )
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
        help="at most this many fits at once (a Prefect global concurrency limit; "
        "with --search, the fits of all searches together)",
    )
    parser.add_argument(
        "--storage", metavar="DIR", help="result storage folder (default: $PREFECT_HOME/storage)"
    )
    search_options.add_search_arguments(parser)


def validate_training_args(args: argparse.Namespace) -> dict[str, Any]:
    """Check every training option offline and return ``train_flow``'s parameters.

    Prepares the dataset as the flow will (:func:`~.flow.training_data.prepare_data`: a
    missing file, target column or a one-class table fails here) and normalizes what
    the flow would otherwise resolve later: the file's absolute path, the models as a list,
    the scheduler address with its scheme. Whether the scheduler answers is the caller's
    check: a deployment may be served before its cluster is up.
    """
    from prefect_sklearn_dask.flow.run_options import RunOptions
    from prefect_sklearn_dask.flow.training_data import prepare_data

    search_options.validate(args)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.reuse_fits and not args.cache:
        raise UserError("--reuse-fits reads the fit cache that --no-cache turns off; drop one")
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
    args.models = parse_models(args.models)
    args.dataset = prepare_data(RunOptions.from_params(**flow_parameters(args))).source
    if args.adapt:
        parse_adapt(args.adapt)
    if args.cluster_config:
        validate_config(args.cluster_config)
    if args.address:
        args.address = check_address(args.address, security)
    return flow_parameters(args)


def flow_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """``train_flow``'s keyword arguments: every option whose dest is one of its parameters."""
    from prefect_sklearn_dask.flow.train_flow import train_flow

    return {
        name: getattr(args, name)
        for name in train_flow.parameters.properties
        if hasattr(args, name)
    }
