"""One run's options: built once from ``train_flow``'s parameters, checked, passed down.

The flow's parameters stay loose keyword arguments (the served deployment's schema and
users' calls depend on their names, types and defaults); everything below the flow takes
this one frozen object instead, so a step reads ``opts.seed`` rather than having the
flow hand each step the subset it needs. The checks the flow made first (model names,
search options) run here, before anything else, with the same errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect_sklearn_dask.flow.model_store import default_storage
from prefect_sklearn_dask.flow.search_task import SearchRequest, search_inputs
from prefect_sklearn_dask.ml.registry import parse_models

Metric = Literal["f1_macro", "accuracy", "roc_auc"]
Search = Literal["none", "grid", "random", "halving"]


@dataclass(frozen=True)
class RunOptions:
    """``train_flow``'s parameters (same names) and what the run derives from them once.

    Derived: ``names`` (the models, parsed and checked), ``searching`` (the validated
    search, None without one) and ``storage_root`` (``storage`` or Prefect's default,
    resolved in the flow run's settings).
    """

    dataset: str
    target: str | None
    models: list[str]
    runner: str
    address: str | None
    workers: int | None
    cv: int
    test_size: float
    seed: int
    metric: Metric
    storage: str | None
    max_failures: int | None
    max_concurrent: int | None
    adapt: str | None
    cluster_config: str | None
    tls_ca: str | None
    tls_cert: str | None
    tls_key: str | None
    upload_code: bool
    performance_report: bool
    cache: bool
    reuse_fits: bool
    search: Search
    n_iter: int
    search_space: dict[str, dict[str, Any]] | None
    names: list[str] = dataclasses.field(default_factory=list)
    searching: SearchRequest | None = None
    storage_root: Path = Path()

    @classmethod
    def from_params(cls, **params: Any) -> RunOptions:
        """Every flow parameter by name (a missing or unknown one is a ``TypeError``).

        Raises the flow's user errors for unknown models and bad search options.
        """
        derived = set(_DERIVED) & params.keys()
        if derived:
            raise TypeError(f"not flow parameters: {', '.join(sorted(derived))}")
        opts = cls(**params)
        names = parse_models(opts.models)
        searching = search_inputs(
            opts.search,
            opts.n_iter,
            opts.cv,
            opts.search_space,
            opts.seed,
            opts.metric,
            opts.max_concurrent,
        )
        storage_root = Path(opts.storage).expanduser() if opts.storage else default_storage()
        return dataclasses.replace(
            opts, names=names, searching=searching, storage_root=storage_root
        )

    @classmethod
    def parameter_names(cls) -> list[str]:
        """The fields that are flow parameters (the rest are derived)."""
        return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in _DERIVED]


_DERIVED = ("names", "searching", "storage_root")
