"""Synthetic partitioned data of any size, written partition by partition (never whole
in memory): float32 features, a text category and an int8 label, as in the issue's
4M-row scenario. Used by the tests, the ``partitioned`` benchmark and the README."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_partition(
    rows: int, features: int, seed: int, classes: int = 2, start: int = 0
) -> pd.DataFrame:
    """``rows`` rows whose label depends on a few features and the category."""
    rng = np.random.default_rng([seed, start])
    X = rng.normal(size=(rows, features)).astype("float32")
    category = rng.choice(np.array(["red", "green", "blue"], dtype=object), rows)
    signal = X[:, 0] + 0.5 * X[:, 1 % features] + (category == "red") * 1.2 - 0.4
    signal = signal + rng.normal(scale=0.5, size=rows)
    if classes == 2:
        label = (signal > 0).astype("int8")
    else:
        label = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
        label = label.astype("int8")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    frame["colour"] = pd.Categorical(category, categories=["blue", "green", "red"])
    frame["label"] = label
    return frame


def write_synthetic(
    folder: str | Path,
    rows: int,
    partitions: int,
    features: int = 30,
    seed: int = 0,
    classes: int = 2,
    fmt: str = "parquet",
) -> list[Path]:
    """``partitions`` files ``part-NNNNN.<fmt>`` in ``folder`` with ``rows`` rows in all."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, rows, partitions + 1).astype(int)
    paths = []
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        frame = synthetic_partition(int(stop - start), features, seed, classes, int(start))
        path = folder / f"part-{index:05d}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths
