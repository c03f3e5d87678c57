"""Predict with a model saved by ``train-flow``, after checking its sha256.

python flows/predict.py --data new.csv                       # the latest best model
python flows/predict.py --model ~/.prefect/storage/train-flow/<run>/best-model.json --data new.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect_sklearn_dask.cli import quiet_environment, run_cli

quiet_environment()

import pandas as pd  # noqa: E402

from prefect_sklearn_dask.flow.model_store import default_storage, load_model, write_atomic  # noqa: E402
from prefect_sklearn_dask.ml.data import FILE_SUFFIXES, read_file  # noqa: E402
from prefect_sklearn_dask.ml.errors import UserError  # noqa: E402


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python flows/predict.py",
        description="Load a model saved by train-flow (sha256 checked) and predict on a file.",
    )
    parser.add_argument("--data", required=True, help="CSV or Parquet file with feature columns")
    parser.add_argument(
        "--model",
        help="a best-model.json manifest, its run folder, or a storage folder "
        "(default: the latest model in $PREFECT_HOME/storage)",
    )
    parser.add_argument("--out", help="write predictions to this CSV (default: stdout)")
    args = parser.parse_args(argv)

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
