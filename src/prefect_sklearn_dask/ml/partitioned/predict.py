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

from prefect_sklearn_dask.ml.partitioned.model import PartitionedModel
from prefect_sklearn_dask.ml.partitioned.source import ROW_ID, PartitionedSource


@dataclass(frozen=True)
class PredictReport:
    rows: int
    files: int
    seconds: float
    out: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def predictions(frame: pd.DataFrame, model: PartitionedModel, classes: list[Any]) -> pd.DataFrame:
    proba = model.predict_proba(frame) if len(frame) else np.zeros((0, len(classes)))
    labels = np.asarray(classes)[proba.argmax(axis=1)]  # the classes' own dtype
    out = pd.DataFrame({ROW_ID: frame[ROW_ID].to_numpy(), "prediction": labels})
    for index, label in enumerate(classes):
        out[f"proba_{label}"] = proba[:, index]
    return out


def predict_to_parquet(
    client, model: PartitionedModel, classes: list[Any], source: PartitionedSource, out: str
) -> PredictReport:
    """Write ``out/part-NNNNN.parquet`` for every partition of ``source``."""
    import dask.dataframe as dd

    started = time.perf_counter()
    if source.n_rows is None:  # CSV: count the rows first, for the row ids
        lengths = client.compute(source.frame().map_partitions(len)).result()
        source = source.with_row_counts(lengths)
    frame = source.frame()
    [shared] = client.scatter([model], broadcast=False, hash=False)
    meta = predictions(source.meta(), model, classes)
    result = frame.map_partitions(predictions, shared, classes, meta=meta)
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
