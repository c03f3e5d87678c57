"""The seam between ``train-flow`` and a kind of data: the steps the flow calls on it.

The flow never asks what kind of data it has. :func:`prepare_data` picks the kind from
the ``dataset`` string (:data:`DATA_KINDS`, first match; in-memory data otherwise) and
returns a :class:`TrainingData`; the flow then logs :meth:`~TrainingData.describe`, keys
the fit cache on :meth:`~TrainingData.cache_params`, submits and gathers what
:meth:`~TrainingData.training` returns (one task run per model, each returning a
:class:`~.ml.evaluate.TrainReport`), and stores the best model with
:meth:`~TrainingData.manifest_fields`. In-memory data (:class:`InMemoryData`: a
:class:`~.ml.data.DatasetRef` every worker loads whole) is one implementation; another
kind is one class and one :data:`DATA_KINDS` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from prefect_sklearn_dask.flow import fit_cache
from prefect_sklearn_dask.flow.tasks import train_model
from prefect_sklearn_dask.ml.data import DatasetRef, load_split, prepare
from prefect_sklearn_dask.ml.evaluate import TrainReport
from prefect_sklearn_dask.ml.partitioned.source import is_partitioned_source

if TYPE_CHECKING:
    from prefect import Task

    from prefect_sklearn_dask.flow.fit_cache import FitCache
    from prefect_sklearn_dask.flow.run_options import RunOptions
    from prefect_sklearn_dask.flow.runner import Run


@dataclass(frozen=True)
class Training:
    """What the flow submits for each model and how it counts the fits.

    ``task`` is submitted once per model with ``inputs(model)``, and must return a
    :class:`~.ml.evaluate.TrainReport` (``estimator`` set: the fitted model to store) or
    raise: a raised exception is that model's failed row; ``UserError`` is not retried
    when the task uses :func:`~.tasks.is_transient`. ``in_flow_process``: the task runs
    drive their own Dask work from the flow's process (:meth:`~.runner.Run.submitter`);
    otherwise each is a Prefect task run on the runner (a Dask worker). ``count_fits``
    turns the reports into (fits reused from the cache, fits); None: one fit per
    submitted model, reused when its task run ended ``Cached``.
    """

    task: Task
    inputs: Callable[[str], dict[str, Any]]
    in_flow_process: bool = False
    count_fits: Callable[[list[TrainReport]], tuple[int, int]] | None = None


class TrainingData(Protocol):
    """A run's validated data, and how models are trained and scored on it."""

    source: str
    fingerprint: str

    def describe(self) -> str:
        """The run's first log line about the data (rows, features, classes, sha256)."""
        ...

    def summary(self) -> dict[str, Any]:
        """The run summary's ``dataset``: ``source``, ``n_rows``, ``n_features``, ``n_classes``."""
        ...

    def predict_args(self) -> str:
        """``flows/predict.py``'s data arguments for data like this (the run summary's
        ``predict_command``)."""
        ...

    def cache_params(self) -> dict[str, Any]:
        """What about the data decides its fits (fingerprint, target, split, seed): the
        fit cache's parameter set, with the run's CV folds and models added."""
        ...

    def training(self, run: Run, opts: RunOptions, cache: FitCache | None) -> Training:
        """The task to submit per model, inside the started runner (``run.client`` is the
        Dask client or None). Raise ``UserError`` for options this data cannot train
        with. Cache fits with :func:`.fit_cache.plain_fit_options` (one fit per task) or
        in :func:`.fit_cache.search_folder` (many per task); ``cache`` None: nowhere."""
        ...

    def manifest_fields(self, best: TrainReport) -> dict[str, Any]:
        """The stored model's data fields: ``classes`` (in the order of the report's
        class indices), ``features``, ``target``, ``dataset``, ``dataset_sha256``."""
        ...


@dataclass(frozen=True)
class InMemoryData:
    """A dataset each process loads whole (built-in, synthetic, one CSV/Parquet file).

    Validated and split once in the flow's process by :func:`~.ml.data.prepare`; tasks
    get the small ``ref`` and every worker loads the split once from it.
    """

    ref: DatasetRef

    @classmethod
    def prepare(cls, opts: RunOptions) -> InMemoryData:
        return cls(prepare(opts.dataset, opts.target, opts.test_size, opts.seed))

    @property
    def source(self) -> str:
        return self.ref.source

    @property
    def fingerprint(self) -> str:
        return self.ref.fingerprint

    def describe(self) -> str:
        ref = self.ref
        return (
            f"dataset {ref.source}: {ref.n_rows} rows x {ref.n_features} features, "
            f"{ref.n_classes} classes (sha256 {ref.fingerprint[:12]})"
        )

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self.ref, k) for k in ("source", "n_rows", "n_features", "n_classes")}

    def predict_args(self) -> str:
        return "--data YOUR.csv"

    def cache_params(self) -> dict[str, Any]:
        ref = self.ref
        return {
            "data": ref.fingerprint,
            "target": ref.target,
            "test_size": ref.test_size,
            "seed": ref.seed,
        }

    def training(self, run: Run, opts: RunOptions, cache: FitCache | None) -> Training:
        """A ``search-<model>`` task per model with a search, else a ``train-<model>`` one."""
        if opts.searching:
            return opts.searching.training(self.ref, cache, opts.runner, opts.workers)
        ref = self.ref

        def inputs(name: str) -> dict[str, Any]:
            return {
                "model": name,
                "data": ref,
                "seed": opts.seed,
                "cv": opts.cv,
                "limit": run.limit,
            }

        return Training(train_model.with_options(**fit_cache.plain_fit_options(cache)), inputs)

    def manifest_fields(self, best: TrainReport) -> dict[str, Any]:
        split = load_split(self.ref)
        return {
            "classes": list(split.classes),
            "features": [str(c) for c in split.X_train.columns],
            "target": self.ref.target,
            "dataset": self.ref.source,
            "dataset_sha256": self.ref.fingerprint,
        }


def _partitioned(opts: RunOptions) -> TrainingData:
    """Partitioned files (flow/partitioned_data.py), imported only when used."""
    from prefect_sklearn_dask.flow.partitioned_data import PartitionedData

    return PartitionedData.prepare(opts)


# (accepts the dataset string?, builds the data from the run's options): first match wins.
DataKind = tuple[Callable[[str], bool], Callable[["RunOptions"], TrainingData]]
DATA_KINDS: list[DataKind] = [(is_partitioned_source, _partitioned)]


def prepare_data(opts: RunOptions) -> TrainingData:
    """The run's data, validated: the first kind in :data:`DATA_KINDS` that accepts
    ``opts.dataset``, else in-memory data (whose errors name every accepted form)."""
    for accepts, build in DATA_KINDS:
        if accepts(opts.dataset):
            return build(opts)
    return InMemoryData.prepare(opts)
