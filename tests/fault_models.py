"""Models that break their Dask worker, registered for fault tests only.

Workers load this with ``dask worker --preload tests.fault_models`` (its
``dask_setup`` registers them); the test process adds :data:`SPECS` to its registry
with ``monkeypatch``, so the names resolve on both sides:

- ``crash``: SIGKILLs its own worker process in ``fit`` (a segfaulting extension).
- ``hog``: allocates memory until the worker's nanny kills it at its memory limit
  (bounded at 6 GiB so a worker without a limit cannot take the machine).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
from sklearn.naive_bayes import GaussianNB

from prefect_sklearn_dask.ml import registry
from prefect_sklearn_dask.ml.registry import ModelSpec

HOG_CHUNK_MIB = 64
HOG_MAX_GIB = 6


class CrashNB(GaussianNB):
    def fit(self, X, y, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)


class HogNB(GaussianNB):
    def fit(self, X, y, **kwargs):
        held = []
        for _ in range(HOG_MAX_GIB * 1024 // HOG_CHUNK_MIB):
            held.append(np.ones(HOG_CHUNK_MIB * 2**20 // 8))  # touched, so really resident
            time.sleep(0.05)
        return super().fit(X, y, **kwargs)


SPECS = {
    "crash": ModelSpec("crash", "crash", lambda seed: CrashNB()),
    "hog": ModelSpec("hog", "hog", lambda seed: HogNB()),
}


def dask_setup(worker) -> None:
    """Dask's preload hook: register the models in the worker process."""
    registry.REGISTRY.update(SPECS)
