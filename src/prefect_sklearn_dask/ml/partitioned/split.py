"""The held-out split of partitioned data: a row is a test row by the hash of its values.

Whether a row is held out depends on its content and the seed only, not on which file
or partition holds it or where that partition is read, so every pass (fit, score) and
every re-partitioning of the same data agree, with nothing shipped between workers.
Identical rows land on the same side (no copy of a test row is trained on).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from prefect_sklearn_dask.ml.partitioned.source import ROW_ID

TEST = "__test__"


def hash_key(seed: int) -> str:
    """pandas' row hash takes a 16-character key: one per seed."""
    return hashlib.sha256(f"split-seed={seed}".encode()).hexdigest()[:16]


def is_test(frame: pd.DataFrame, seed: int, test_size: float) -> np.ndarray:
    """True for the rows of ``frame`` held out for testing (about ``test_size`` of them)."""
    values = frame.drop(columns=[c for c in (ROW_ID, TEST) if c in frame.columns])
    hashes = pd.util.hash_pandas_object(values, index=False, hash_key=hash_key(seed))
    unit = (hashes.to_numpy() >> np.uint64(11)).astype(np.float64) / float(2**53)
    return unit < test_size


def mark(frame: pd.DataFrame, seed: int, test_size: float) -> pd.DataFrame:
    """``frame`` with a boolean ``__test__`` column (computed once per partition)."""
    return frame.assign(**{TEST: is_test(frame, seed, test_size)})


def side(frame: pd.DataFrame, test: bool) -> pd.DataFrame:
    """The test (or train) rows of a marked partition, without the mark."""
    keep = frame[TEST].to_numpy() if test else ~frame[TEST].to_numpy()
    return frame.loc[keep].drop(columns=[TEST])
