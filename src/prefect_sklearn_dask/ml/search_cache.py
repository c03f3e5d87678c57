"""One file per finished search fit, so a killed search resumes where it stopped.

The key (:func:`fit_key`) is everything that changes a fit's score: the model, its
candidate's parameters, the fold (k, index, seed, subsample size), the scorer, the
dataset reference (whose sha256 fingerprint changes with the data) and the code that
fits (:data:`CODE_VERSION`). The caller chooses the folder, so what counts as "the same
run" for reuse is decided in one place outside this module.

Each fit is written by the process that ran it (a Dask worker, a thread) to a temp file
renamed into place: a worker or flow killed mid-search loses no finished fit, and a
half-written file is never read.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from pathlib import Path

import joblib
import sklearn

from prefect_sklearn_dask.ml import preprocess, registry, search
from prefect_sklearn_dask.ml.data import DatasetRef
from prefect_sklearn_dask.ml.search import FitJob, FitResult, fit_one


def _code_version() -> str:
    # inspect reads through the module's loader: a worker that imports the package from
    # the zip --upload-code ships has no files to open.
    digest = hashlib.sha256(f"sklearn={sklearn.__version__}".encode())
    for module in (search, registry, preprocess):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


def fit_key(ref: DatasetRef, job: FitJob) -> str:
    """The cache key of one candidate x fold fit (stable across processes and runs).

    The candidate's and round's positions are left out: the same parameters on the
    same fold are the same fit whichever round of a search asks for them.
    """
    params = sorted(job.params.items())
    return joblib.hash((job.model, params, job.fold, job.scoring, ref, CODE_VERSION))


def load(folder: str | None, key: str) -> FitResult | None:
    """The cached result for ``key``, or None (no folder, missing or unreadable file)."""
    if not folder:
        return None
    path = Path(folder) / f"{key}.joblib"
    try:
        return joblib.load(path)
    except (OSError, EOFError, ValueError):
        return None


def store(folder: str, key: str, result: FitResult) -> None:
    """Write atomically: a temp file in the same folder, renamed over the final name."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target, prefix=f".{key}.", suffix=".tmp")
    os.close(handle)
    try:
        joblib.dump(result, tmp)
        os.replace(tmp, target / f"{key}.joblib")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fit_and_store(ref: DatasetRef, job: FitJob, folder: str | None) -> FitResult:
    """:func:`~.search.fit_one`, then persisted under ``folder`` (the unit shipped to workers).

    A fit already on disk is read back, not refitted: when a worker dies, Dask recomputes
    the results it held, and those fits had finished.
    """
    if not folder:
        return fit_one(ref, job)
    key = fit_key(ref, job)
    cached = load(folder, key)
    if cached is not None:
        return cached
    result = fit_one(ref, job)
    store(folder, key, result)
    return result
