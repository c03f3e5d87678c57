"""Predict with a model saved by ``train-flow``, after checking its sha256.

python flows/predict.py --data new.csv                       # the latest best model
python flows/predict.py --model ~/.prefect/storage/train-flow/<run>/best-model.json --data new.csv
python flows/predict.py --model M --data parts/ --out preds/ # partitioned: on a Dask cluster

A directory, glob or URL of Parquet/CSV partitions is predicted partition by partition on
a Dask cluster (``--address``, or a new local one) into ``--out``, one Parquet file per
input partition, rows in input order with a ``row_id`` column.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect_sklearn_dask.cli import fast_imports, quiet_environment, run_cli

quiet_environment()

with fast_imports():
    import pandas as pd

    from prefect_sklearn_dask.flow.model_store import default_storage, load_model, write_atomic
    from prefect_sklearn_dask.ml.data import FILE_SUFFIXES, read_file
    from prefect_sklearn_dask.ml.errors import UserError
    from prefect_sklearn_dask.ml.partitioned.source import is_partitioned_source


def predict_frame(model, manifest: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Predictions (original class labels) for each row, checking the expected columns."""
    features = manifest["features"]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise UserError(
            f"the data lacks column(s) the model was trained on: {', '.join(missing[:10])}"
        )
    codes = model.predict(frame[features])
    classes = manifest["classes"]
    return pd.DataFrame({"prediction": [classes[int(c)] for c in codes]}, index=frame.index)


def predict_partitions(args: argparse.Namespace) -> int:
    """Partitioned ``--data``: check it from metadata, then predict on the cluster into a
    temporary folder renamed to ``--out`` when complete (nothing half-written)."""
    import shutil
    import tempfile

    from prefect_sklearn_dask.cluster.local import local_cluster_kwargs
    from prefect_sklearn_dask.cluster.remote import check_address
    from prefect_sklearn_dask.ml.partitioned.predict import predict_to_parquet
    from prefect_sklearn_dask.ml.partitioned.source import open_source

    if not args.out:
        raise UserError("--out DIR is needed to predict partitioned data (one file per partition)")
    out = Path(args.out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {str(out)!r} exists and is not an empty folder; choose another")
    if args.address and (args.workers or args.worker_memory):
        raise UserError("--workers/--worker-memory size a new local cluster; drop --address")
    model, manifest = load_model(Path(args.model).expanduser() if args.model else default_storage())
    source = open_source(args.data, None, need_target=False)
    source.require(manifest["features"])
    from distributed import Client, LocalCluster

    cluster = None
    if args.address:
        client = Client(check_address(args.address, None), timeout="30s")
    else:
        kwargs = local_cluster_kwargs(args.workers, worker_memory=args.worker_memory)
        cluster = LocalCluster(**{**kwargs, "dashboard_address": ":0"})
        client = Client(cluster)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        with client:
            done = predict_to_parquet(
                client, model, manifest["classes"], source, str(staging), manifest["features"]
            )
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if cluster is not None:
            cluster.close()
    print(
        f"{done.rows} predictions by {manifest['model']} -> {out} ({done.files} Parquet "
        f"partitions, {done.rows_per_second:,.0f} rows/s)",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python flows/predict.py",
        description="Load a model saved by train-flow (sha256 checked) and predict on a file, "
        "or on a directory/glob/URL of partitions on a Dask cluster.",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="a CSV or Parquet file, or a directory, glob or URL (s3://...) of partitions",
    )
    parser.add_argument(
        "--model",
        help="a best-model.json manifest, its run folder, or a storage folder "
        "(default: the latest model in $PREFECT_HOME/storage)",
    )
    parser.add_argument(
        "--out",
        help="write predictions to this CSV (default: stdout); for partitioned data, "
        "a new folder of Parquet files",
    )
    parser.add_argument("--address", help="Dask scheduler for partitioned data")
    parser.add_argument("--workers", type=int, help="workers of a new local cluster")
    parser.add_argument(
        "--worker-memory", metavar="SIZE", help="memory limit per new local worker (1500MB)"
    )
    args = parser.parse_args(argv)

    if is_partitioned_source(args.data):
        return predict_partitions(args)
    data_path = Path(args.data)
    if data_path.suffix.lower() not in FILE_SUFFIXES:
        raise UserError(f"--data must be a .csv or .parquet file, got {args.data!r}")
    frame = read_file(data_path)
    model, manifest = load_model(Path(args.model).expanduser() if args.model else default_storage())
    predictions = predict_frame(model, manifest, frame)
    if args.out:
        write_atomic(Path(args.out), predictions.to_csv(index=False).encode())
        print(
            f"{len(predictions)} predictions by {manifest['model']} -> {args.out}", file=sys.stderr
        )
    else:
        predictions.to_csv(sys.stdout, index=False)
    return 0


def cli() -> None:
    """The console script (and ``flows/*.py``): exit with ``main``'s code."""
    sys.exit(run_cli(main))
