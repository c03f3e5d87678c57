"""Which earlier fits a run may reuse, for plain fits and search fits alike.

The rule, stated once here and applied to every fit a run makes:

- A run killed half-way (SIGKILL, lost server, too many failures) is re-run with the
  same command and resumes: every fit it finished is read back, the rest are trained.
- A completed run's re-run trains again: comparing runners right after ``make run``
  once "trained" 8 of 8 fits in 0.70 s from the dask run's cache, comparing cache reads.
  ``reuse=True`` (``--reuse-fits``) reuses a completed run's fits on purpose.
- ``enabled=False`` (``--no-cache``) trains everything and writes nothing per fit.

How: the run's parameter set (data fingerprint, split, seed, CV, models) has a
*generation*, the count of identical runs that completed. A run fits in the current
generation and advances it when it completes (:meth:`FitCache.complete`); one that died
never does, so its re-run lands in the same generation. ``reuse`` fits in the last
completed generation instead and leaves the counter alone.

Two stores follow that rule:

- plain fits (one ``train-model`` task run per model) are Prefect results whose cache
  key includes the generation: :func:`plain_fit_options`;
- search fits (candidate x fold, plain Dask work, no task run each) are one file per fit
  (:func:`fit_and_store`, keyed by :func:`fit_key`) in the generation's folder
  (:func:`search_folder`), written by the process that ran the fit, so a killed search
  loses no finished fit.

    cache = open_run_cache(storage_root, data_params, cv, models, enabled=True, reuse=False)
    train_model.with_options(**plain_fit_options(cache))     # or search_folder(cache)
    ...                                                      # the run completes
    complete(cache)
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import sklearn
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE, CachePolicy

from prefect_sklearn_dask.ml import preprocess, registry, search
from prefect_sklearn_dask.ml.data import DatasetRef
from prefect_sklearn_dask.ml.search import FitJob, FitResult, fit_one

CACHE_DIR = "fit-cache"
GENERATIONS_DIR = "generations"
SEARCH_CACHE = "search"
# A plain fit's key: its task's inputs and source; ``limit`` (the concurrency-limit
# name) is left out, it does not change the fit.
FIT_CACHE: CachePolicy = (INPUTS - "limit") + TASK_SOURCE
NO_FIT_CACHE: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@dataclass
class Generation(CachePolicy):
    """A constant part of every cache key: the run's parameter set and its generation."""

    namespace: str = ""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs: Any) -> str:
        return self.namespace


def parameter_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able parameter set (key order does not matter)."""
    body = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(body).hexdigest()[:16]


@dataclass(frozen=True)
class FitCache:
    """The fit cache of one run: where fits live and which generation it fits in."""

    root: Path
    params_key: str
    generation: int
    completed_runs: int
    reuse: bool

    @property
    def namespace(self) -> str:
        return f"{self.params_key}/{self.generation}"

    def policy(self) -> CachePolicy:
        """Add to a task's cache policy so its fits land in this run's generation."""
        return Generation(namespace=self.namespace)

    def complete(self) -> None:
        """The run finished: the next identical run (without ``reuse``) trains again."""
        with _counter(self.root, self.params_key) as (read, write):
            if read() <= self.generation:
                write(self.generation + 1)

    def describe(self, reused: int, fits: int) -> str:
        """One line saying what the cache did this run, and how to get the other behaviour."""
        if self.reuse:
            source = "earlier completed runs" if self.completed_runs else "unfinished runs"
            return f"--reuse-fits: reused {reused} of {fits} fits from {source}"
        if reused:
            return (
                f"resumed: reused {reused} of {fits} fits an unfinished run of the same "
                "command left; trained the rest"
            )
        if self.completed_runs:
            return (
                f"trained all {fits} fits: an identical run completed before "
                "(--reuse-fits reuses its fits)"
            )
        return f"trained all {fits} fits (none cached for these parameters)"


def open_fit_cache(root: Path, params: Mapping[str, Any], reuse: bool = False) -> FitCache:
    """The fit cache for a run with ``params``: the current generation, or with ``reuse``
    the last completed one (the current one when none has completed)."""
    key = parameter_key(params)
    with _counter(root, key) as (read, _):
        completed = read()
    generation = completed - 1 if reuse and completed else completed
    return FitCache(
        root=root, params_key=key, generation=generation, completed_runs=completed, reuse=reuse
    )


def open_run_cache(
    storage_root: Path,
    data_params: Mapping[str, Any],
    cv: int,
    models: Sequence[str],
    *,
    enabled: bool,
    reuse: bool,
) -> FitCache | None:
    """A run's fit cache under ``storage_root`` (None when ``enabled`` is off: nothing is
    written or looked up). Its parameter set is everything that decides its fits: the
    data's (:meth:`~.training_data.TrainingData.cache_params`), the CV folds, the models."""
    if not enabled:
        return None
    params = {**data_params, "cv": cv, "models": sorted(models)}
    return open_fit_cache(storage_root / CACHE_DIR, params, reuse)


def plain_fit_options(cache: FitCache | None) -> dict[str, Any]:
    """``Task.with_options`` keywords persisting each plain fit in ``cache`` (None: nowhere).

    The cache lives beside the models, in local storage every process of a local run
    can read. A Path, not an unsaved LocalFileSystem block: Prefect turns it into local
    storage in each process without registering a block on the server.
    """
    if cache is None:
        return NO_FIT_CACHE
    return {"cache_policy": FIT_CACHE + cache.policy(), "result_storage": cache.root}


def search_folder(cache: FitCache | None) -> str | None:
    """Where this run's search fits are kept: a folder per generation (None: nowhere)."""
    if cache is None:
        return None
    return str(cache.root / cache.namespace / SEARCH_CACHE)


def complete(cache: FitCache | None) -> None:
    """The run completed: advance its generation (nothing without a cache)."""
    if cache is not None:
        cache.complete()


def summary(
    cache: FitCache | None, storage_root: Path, reused: int, fits: int, reuse_fits: bool
) -> dict[str, Any]:
    """The run summary's ``cache`` entry: what the cache did, and where it lives."""
    return {
        "enabled": cache is not None,
        "reused": reused,
        "fits": fits,
        "path": str(storage_root / CACHE_DIR) if cache is not None else None,
        "reuse_fits": reuse_fits,
        "said": cache.describe(reused, fits) if cache is not None else None,
    }


@contextmanager
def _counter(root: Path, key: str) -> Iterator[tuple[Any, Any]]:
    """Read and write the completed-run count of ``key`` under an exclusive file lock."""
    path = root / GENERATIONS_DIR / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)

        def read() -> int:
            try:
                return int(json.loads(path.read_text())["completed_runs"])
            except (OSError, ValueError, KeyError, TypeError):
                return 0

        def write(value: int) -> None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"completed_runs": value}))
            tmp.replace(path)

        try:
            yield read, write
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Search fits: one file per finished fit.


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

    Everything that changes a fit's score: the model, its candidate's parameters, the
    fold (k, index, seed, subsample size), the scorer, the dataset reference (whose
    sha256 fingerprint changes with the data) and the code that fits
    (:data:`CODE_VERSION`). The candidate's and round's positions are left out: the same
    parameters on the same fold are the same fit whichever round of a search asks.
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
    """Write atomically: a temp file in the same folder, renamed over the final name, so
    a half-written file is never read."""
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
    """:func:`~.ml.search.fit_one`, then persisted under ``folder`` (the unit shipped to
    workers; None: nothing written).

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
