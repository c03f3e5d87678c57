"""Datasets: built-in sklearn sets, synthetic data of any size, or a CSV/Parquet file.

The flow never ships the data to its tasks. It validates the dataset once and hands
each task a small :class:`DatasetRef`; every worker process loads (or regenerates)
the data once from that reference and keeps it in memory for all later tasks.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder

from prefect_sklearn_dask.ml.errors import DataError

BUILTIN_LOADERS = {
    "iris": load_iris,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
}
SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "n_samples": 5000,
    "n_features": 30,
    "n_informative": 10,
    "n_redundant": 5,
    "n_classes": 2,
}
SYNTHETIC_KEYS = {
    "n_samples",
    "n_features",
    "n_informative",
    "n_redundant",
    "n_repeated",
    "n_classes",
    "n_clusters_per_class",
    "weights",
    "flip_y",
    "class_sep",
}
FILE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
BUILTIN_TARGET = "target"


@dataclass(frozen=True)
class DatasetRef:
    """A small, hashable handle to a validated dataset and its train/test split.

    ``fingerprint`` is the sha256 of the data's identity (file bytes, or the generator
    spec and scikit-learn version): a worker checks it before using a file, so it
    never trains on data that changed under the flow.
    """

    source: str
    target: str
    test_size: float
    seed: int
    fingerprint: str
    n_rows: int
    n_features: int
    n_classes: int


@dataclass(frozen=True)
class Split:
    """The train/test split every task of a run shares."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    classes: tuple[Any, ...]


def kind_of(source: str) -> str:
    """``builtin``, ``synthetic`` or ``file``; anything else is a user error."""
    if source in BUILTIN_LOADERS:
        return "builtin"
    if source == "synthetic" or source.startswith("synthetic:"):
        return "synthetic"
    if Path(source).suffix.lower() in FILE_SUFFIXES:
        return "file"
    raise DataError(
        f"unknown dataset {source!r}; use one of {', '.join(BUILTIN_LOADERS)}, "
        "synthetic:n_samples=N,n_features=M, or a .csv/.parquet file"
    )


def parse_synthetic(source: str) -> dict[str, Any]:
    """``synthetic:n_samples=1000,n_features=20`` -> make_classification kwargs."""
    params = dict(SYNTHETIC_DEFAULTS)
    _, _, spec = source.partition(":")
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in SYNTHETIC_KEYS:
            raise DataError(
                f"bad synthetic parameter {item!r}; use key=value with keys from "
                f"{', '.join(sorted(SYNTHETIC_KEYS))}"
            )
        try:
            value = float(raw)
        except ValueError:
            raise DataError(f"synthetic parameter {key} must be a number, got {raw!r}") from None
        params[key] = int(value) if value.is_integer() and key != "class_sep" else value
    params["n_informative"] = min(params["n_informative"], params["n_features"])
    params["n_redundant"] = min(
        params["n_redundant"], params["n_features"] - params["n_informative"]
    )
    try:
        make_classification(**{**params, "n_samples": max(100, params["n_classes"] * 4)})
    except ValueError as exc:
        raise DataError(f"bad synthetic dataset {source!r}: {exc}") from None
    return params


def read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} not found; check the path")
    try:
        if FILE_SUFFIXES[path.suffix.lower()] == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {str(path)!r} is empty; it needs a header and rows") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {str(path)!r}: {first}") from None


def load_frame(source: str, target: str | None, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target for any dataset kind, validated for classification."""
    kind = kind_of(source)
    if kind == "builtin":
        bunch = BUILTIN_LOADERS[source](as_frame=True)
        return bunch.data, bunch.target.rename(BUILTIN_TARGET)
    if kind == "synthetic":
        X, y = make_classification(**parse_synthetic(source), random_state=seed)
        columns = [f"x{i}" for i in range(X.shape[1])]
        return pd.DataFrame(X, columns=columns), pd.Series(y, name=BUILTIN_TARGET)
    frame = read_file(Path(source))
    if target is None:
        raise DataError(f"pass --target COLUMN for {source!r}; its columns are: {_columns(frame)}")
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not in {source!r}; its columns are: {_columns(frame)}"
        )
    return frame.drop(columns=[target]), frame[target]


def _columns(frame: pd.DataFrame, limit: int = 20) -> str:
    names = [str(c) for c in frame.columns[:limit]]
    more = len(frame.columns) - limit
    return ", ".join(names) + (f", ... (+{more})" if more > 0 else "")


def validate(X: pd.DataFrame, y: pd.Series, source: str) -> None:
    """Reject data no classifier pipeline can use, naming the fix."""
    if len(X) == 0:
        raise DataError(f"dataset {source!r} has no rows")
    if X.shape[1] == 0:
        raise DataError(f"dataset {source!r} has no feature columns besides the target")
    missing_target = int(y.isna().sum())
    if missing_target:
        raise DataError(
            f"target column {y.name!r} has {missing_target} missing value(s); "
            "drop or fill those rows"
        )
    counts = y.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else None
        raise DataError(
            f"target column {y.name!r} has one class ({only!r}); classification needs at least two"
        )
    if counts.min() < 2:
        raise DataError(
            f"class {counts.idxmin()!r} of {y.name!r} has only one row; "
            "each class needs at least two rows to be split into train and test"
        )
    empty = [str(c) for c in X.columns if X[c].isna().all()]
    if empty:
        raise DataError(f"column(s) {', '.join(empty)} are entirely empty; drop them")
    for column in X.columns:
        series = X[column]
        if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(
            series
        ):
            raise DataError(
                f"column {column!r} holds dates/times ({series.dtype}); "
                "convert it to numbers (e.g. a timestamp) or drop it"
            )
        if series.dtype == object:
            kinds = {type(v).__name__ for v in series.dropna()}
            if not kinds <= {"str", "bool", "int", "float"} or len(kinds) > 1:
                raise DataError(
                    f"column {column!r} mixes value types ({', '.join(sorted(kinds))}); "
                    "make it all text or all numbers"
                )


def fingerprint(source: str, target: str | None) -> str:
    """sha256 of the data's identity: file bytes, or generator spec + sklearn version."""
    digest = hashlib.sha256()
    if kind_of(source) == "file":
        with open(source, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    else:
        digest.update(f"{source}|sklearn={sklearn.__version__}".encode())
    digest.update(f"|target={target}".encode())
    return digest.hexdigest()


def prepare(source: str, target: str | None, test_size: float, seed: int) -> DatasetRef:
    """Load and validate the dataset once in the caller, and return its reference."""
    if not 0.0 < test_size < 1.0:
        raise DataError(f"test size must be between 0 and 1, got {test_size}")
    if kind_of(source) == "file":
        source = str(Path(source).expanduser().resolve())
    X, y = load_frame(source, target, seed)
    validate(X, y, source)
    ref = DatasetRef(
        source=source,
        target=str(y.name),
        test_size=test_size,
        seed=seed,
        fingerprint=fingerprint(source, target),
        n_rows=len(X),
        n_features=X.shape[1],
        n_classes=int(y.nunique()),
    )
    with _SPLITS_LOCK:
        _remember(ref, _split(ref, X, y))
    return ref


_SPLITS: dict[DatasetRef, Split] = {}
_SPLITS_KEPT = 4
_SPLITS_LOCK = threading.Lock()


def _remember(ref: DatasetRef, split: Split) -> Split:
    while len(_SPLITS) >= _SPLITS_KEPT:
        _SPLITS.pop(next(iter(_SPLITS)))
    _SPLITS[ref] = split
    return split


def load_split(ref: DatasetRef) -> Split:
    """The split for ``ref``, built once per process and reused by every task there.

    In the flow's own process (thread-pool runner) this is the split ``prepare`` made;
    a Dask worker process builds it on its first task and keeps it for the rest.
    """
    with _SPLITS_LOCK:
        if ref in _SPLITS:
            return _SPLITS[ref]
        is_file = kind_of(ref.source) == "file"
        if is_file and fingerprint(ref.source, ref.target) != ref.fingerprint:
            raise DataError(
                f"data file {ref.source!r} changed since the run started (sha256 differs); re-run"
            )
        X, y = load_frame(ref.source, ref.target if is_file else None, ref.seed)
        return _remember(ref, _split(ref, X, y))


def _split(ref: DatasetRef, X: pd.DataFrame, y: pd.Series) -> Split:
    encoder = LabelEncoder()
    codes = encoder.fit_transform(y.to_numpy())
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, codes, test_size=ref.test_size, random_state=ref.seed, stratify=codes
        )
    except ValueError as exc:
        raise DataError(f"cannot split {ref.source!r} into train and test: {exc}") from None
    return Split(X_train, X_test, y_train, y_test, tuple(encoder.classes_.tolist()))
