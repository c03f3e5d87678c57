"""Train and compare scikit-learn classifiers as Prefect tasks, from threads to a Dask cluster.

One package, one room per job:

- :mod:`.ml`: pure scikit-learn work (registry, datasets, fit and evaluate); no Prefect, no Dask.
- :mod:`.bridge`: Prefect on Dask: the fast task runner, building runners, preparing workers,
  turning Dask faults into Prefect states. Usable in any Prefect flow.
- :mod:`.flow`: ``train-flow``, its tasks, artifacts and model store.
- :mod:`.server`: the project's persistent local Prefect server.
- :mod:`.cluster`: local, remote and configured (Kubernetes, HPC) Dask clusters.
- :mod:`.commands`: the command lines behind ``flows/*.py`` (and the console scripts).
- :mod:`.benchmarks`: every backend side by side (``benchmarks/compare.py``).

``FastDaskTaskRunner`` is importable from here, lazily (importing the package stays cheap)::

    from prefect_sklearn_dask import FastDaskTaskRunner
"""

from __future__ import annotations

from typing import Any

__all__ = ["FastDaskTaskRunner"]


def __getattr__(name: str) -> Any:
    if name == "FastDaskTaskRunner":
        from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner

        return FastDaskTaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
