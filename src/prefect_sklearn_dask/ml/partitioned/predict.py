"""Predict partitioned data on the cluster, partition by partition, into Parquet.

Each input partition becomes one output file ``part-NNNNN.parquet`` (in input order)
with the rows in their input order: ``row_id`` (the row's number over the files in
sorted order), ``prediction`` (the class label) and one ``proba_<class>`` column per
class. Only the row count comes back to the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prefect_sklearn_dask.ml.partitioned.source import ROW_ID, PartitionedSource
from prefect_sklearn_dask.ml.partitioned.tree import fetch


@dataclass(frozen=True)
class PredictReport:
    rows: int
    files: int
    seconds: float
    out: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def predictions(
    frame: pd.DataFrame, model: Any, classes: list[Any], features: list[str]
) -> pd.DataFrame:
    """``row_id``, ``prediction`` (a label) and, where the model gives them, one
    ``proba_<class>`` column per class. ``model`` is a :class:`~.model.PartitionedModel`
    or any saved pipeline that takes the ``features`` columns and predicts class indices."""
    X = frame[features]
    out = pd.DataFrame({ROW_ID: frame[ROW_ID].to_numpy()})
    if not hasattr(model, "predict_proba"):
        codes = model.predict(X) if len(frame) else np.zeros(0, dtype=int)
        out["prediction"] = np.asarray(classes)[np.asarray(codes, dtype=int)]
        return out
    proba = model.predict_proba(X) if len(frame) else np.zeros((0, len(classes)))
    out["prediction"] = np.asarray(classes)[proba.argmax(axis=1)]  # the classes' own dtype
    for index, label in enumerate(classes):
        out[f"proba_{label}"] = proba[:, index]
    return out


def predict_to_parquet(
    client,
    model: Any,
    classes: list[Any],
    source: PartitionedSource,
    out: str,
    features: list[str] | None = None,
) -> PredictReport:
    """Write ``out/part-NNNNN.parquet`` for every partition of ``source`` (``features``:
    the columns the model takes; default: a :class:`PartitionedModel`'s own)."""
    features = features or model.features.names
    import dask.dataframe as dd

    started = time.perf_counter()
    if source.n_rows is None:  # CSV: count the rows first, for the row ids
        lengths = fetch(client, source.frame().map_partitions(len))
        source = source.with_row_counts(lengths)
    frame = source.frame()
    [shared] = client.scatter([model], broadcast=False, hash=False)
    meta = predictions(source.meta(), model, classes, features)
    result = frame.map_partitions(predictions, shared, classes, features, meta=meta)
    with client.as_current():
        dd.to_parquet(
            result,
            out,
            write_index=False,
            name_function=lambda i: f"part-{i:05d}.parquet",
            overwrite=False,
        )
    return PredictReport(
        rows=int(source.n_rows or 0),
        files=len(source.pieces),
        seconds=time.perf_counter() - started,
        out=out,
    )
