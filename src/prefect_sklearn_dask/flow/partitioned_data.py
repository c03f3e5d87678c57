"""Partitioned data as ``train-flow``'s :class:`~.training_data.TrainingData`: a directory,
glob or URL of Parquet/CSV partitions that stays on the Dask workers.

The flow's steps do not change: :meth:`PartitionedData.prepare` checks the files from
their metadata (and the options this data trains with) before anything starts;
:meth:`~PartitionedData.training` profiles the data in one pass on the cluster and
returns one ``train-<model>`` task run per model, run from the flow's process
(``in_flow_process``): each drives Dask work across all workers (``xgboost.dask`` or
dask-ml ``Incremental``) and gets back only the model and its held-out scores.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task

from prefect_sklearn_dask.bridge.fanout import current_client
from prefect_sklearn_dask.bridge.worker_memory import WorkerMemory, describe
from prefect_sklearn_dask.flow import fit_cache
from prefect_sklearn_dask.flow.model_store import JoblibSerializer
from prefect_sklearn_dask.flow.tasks import TRANSIENT_RETRIES
from prefect_sklearn_dask.flow.training_data import Training
from prefect_sklearn_dask.ml.errors import DataError, UserError
from prefect_sklearn_dask.ml.evaluate import TrainReport
from prefect_sklearn_dask.ml.partitioned.engines import ENGINES
from prefect_sklearn_dask.ml.partitioned.profile import DataProfile, profile_source
from prefect_sklearn_dask.ml.partitioned.source import PartitionedSource, open_source
from prefect_sklearn_dask.ml.partitioned.train import train_and_score

if TYPE_CHECKING:
    from prefect_sklearn_dask.flow.fit_cache import FitCache
    from prefect_sklearn_dask.flow.run_options import RunOptions
    from prefect_sklearn_dask.flow.runner import Run

# One partitioned model on the cluster at a time: each already uses every worker, and
# two at once would compete for the workers' memory (and stall xgboost's collective).
_CLUSTER = threading.Lock()


@task(
    name="train-partitioned",
    task_run_name="train-{model}",
    persist_result=True,
    result_serializer=JoblibSerializer(),
    **TRANSIENT_RETRIES,
)
def train_partitioned(
    model: str,
    data: PartitionedSource,
    profile: DataProfile,
    seed: int = 0,
    test_size: float = 0.25,
    params: dict[str, Any] | None = None,
) -> TrainReport:
    """Fit and score one model across the cluster; log the peak worker memory it saw."""
    logger = get_run_logger()
    client = current_client()
    if client is None:
        raise UserError("partitioned data trains on a Dask cluster; use --runner dask")
    with _CLUSTER:
        logger.info(
            f"training {model} on partitions, driven from {socket.gethostname()} "
            f"(pid {os.getpid()})"
        )
        watch = WorkerMemory.mark(client)
        report = train_and_score(client, data, profile, model, seed, test_size, params)
        peaks = watch.peaks()
    report.peak_worker_mb = round(peaks["peak_bytes"] / 2**20, 1) if peaks["peak_bytes"] else None
    logger.info(f"{model}: {describe(peaks)}")
    return report


def refuse_options(opts: RunOptions) -> None:
    """What partitioned data cannot train with, in one line each, before anything starts."""
    if opts.runner != "dask":
        raise UserError(
            f"partitioned data trains on a Dask cluster; use --runner dask, not {opts.runner}"
        )
    if opts.searching is not None:
        raise UserError("--search runs on in-memory data only; drop it for partitioned data")
    if opts.cv:
        raise UserError(
            "--cv runs on in-memory data only; partitioned data is scored on its held-out rows"
        )
    other = [name for name in opts.names if name not in ENGINES]
    if other:
        raise UserError(
            f"model(s) {', '.join(other)} train on in-memory data only; on partitioned data "
            f"use --models {','.join(ENGINES)}"
        )


@dataclass(frozen=True)
class PartitionedData:
    """Partitioned files checked from their metadata; the profile (classes, levels, rows)
    is filled in by :meth:`training`, on the cluster."""

    parts: PartitionedSource
    test_size: float
    seed: int
    found: dict[str, DataProfile] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def prepare(cls, opts: RunOptions) -> PartitionedData:
        if not 0.0 < opts.test_size < 1.0:
            raise DataError(f"test size must be between 0 and 1, got {opts.test_size}")
        refuse_options(opts)
        return cls(open_source(opts.dataset, opts.target), opts.test_size, opts.seed)

    @property
    def source(self) -> str:
        return self.parts.dataset

    @property
    def fingerprint(self) -> str:
        return self.parts.fingerprint

    @property
    def profile(self) -> DataProfile | None:
        return self.found.get("profile")

    def n_rows(self) -> int | None:
        return self.profile.n_rows if self.profile else self.parts.n_rows

    def describe(self) -> str:
        parts = self.parts
        rows = self.n_rows()
        return (
            f"dataset {parts.dataset}: {rows if rows is not None else '?'} rows x "
            f"{len(parts.features)} features in {len(parts.files)} {parts.format} file(s), "
            f"{len(parts.pieces)} partition(s), read on the workers "
            f"(fingerprint {parts.fingerprint[:12]})"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.parts.dataset,
            "n_rows": self.n_rows(),
            "n_features": len(self.parts.features),
            "n_classes": self.profile.n_classes if self.profile else None,
            "partitions": len(self.parts.pieces),
            "files": len(self.parts.files),
            "format": self.parts.format,
        }

    def predict_args(self) -> str:
        """Partitions in, partitions out, on the cluster that trained."""
        return "--data YOUR_PARTITIONS/ --out PREDICTIONS/ --address SCHEDULER"

    def cache_params(self) -> dict[str, Any]:
        return {
            "data": self.parts.fingerprint,
            "target": self.parts.target,
            "test_size": self.test_size,
            "seed": self.seed,
            "partitioned": True,
        }

    def training(self, run: Run, opts: RunOptions, cache: FitCache | None) -> Training:
        """Profile the data once on the cluster (a bad partition, one class or missing
        targets fail the run here, naming the file), then one task run per model."""
        if run.client is None:
            raise UserError("partitioned data trains on a Dask cluster; use --runner dask")
        profile = profile_source(run.client, self.parts)
        self.found["profile"] = profile
        counts = zip(profile.classes, profile.class_counts, strict=True)
        get_run_logger().info(
            f"profiled on the cluster: {profile.n_rows} rows, classes "
            + ", ".join(f"{c}: {n}" for c, n in counts)
        )

        def inputs(name: str) -> dict[str, Any]:
            return {
                "model": name,
                "data": self.parts,
                "profile": profile,
                "seed": self.seed,
                "test_size": self.test_size,
            }

        task_ = train_partitioned.with_options(**fit_cache.plain_fit_options(cache))
        return Training(task_, inputs, in_flow_process=True)

    def manifest_fields(self, best: TrainReport) -> dict[str, Any]:
        profile = self.profile
        return {
            "classes": list(profile.classes) if profile else [],
            "features": list(self.parts.features),
            "target": self.parts.target,
            "dataset": self.parts.dataset,
            "dataset_sha256": self.parts.fingerprint,
        }
