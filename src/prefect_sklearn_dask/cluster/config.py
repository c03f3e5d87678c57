"""Cluster configs in YAML: the same flow on Kubernetes or an HPC batch scheduler.

A config names a Dask cluster class by import path plus its keyword arguments, the
two things ``DaskTaskRunner(cluster_class=..., cluster_kwargs=...)`` takes, and
optionally ``adapt`` bounds::

    cluster_class: dask_jobqueue.SLURMCluster
    cluster_kwargs: {queue: normal, cores: 4, memory: 16GB}
    adapt: {minimum: 0, maximum: 10}

It is validated once, here, so a typo is one line naming the key, not a traceback
from inside the cluster class minutes into a run.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.yaml_file import read_yaml

KEYS = {"cluster_class", "cluster_kwargs", "adapt"}
# Optional packages and the extra of this project that installs each.
EXTRAS = {"dask_jobqueue": "hpc", "dask_kubernetes": "kubernetes"}


@dataclass(frozen=True)
class ClusterConfig:
    """A validated config: what to build and how to scale it."""

    cluster_class: str
    cluster_kwargs: dict[str, Any] = field(default_factory=dict)
    adapt_kwargs: dict[str, Any] | None = None
    source: str = "<dict>"


def _fail(source: str, message: str) -> UserError:
    return UserError(f"cluster config {source}: {message}")


def parse_config(raw: Any, source: str = "<dict>") -> ClusterConfig:
    """Check the shape and types of a loaded config (no imports)."""
    if not isinstance(raw, dict):
        raise _fail(source, f"expected a mapping at the top, got {type(raw).__name__}")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise _fail(
            source, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KEYS))}"
        )
    cls = raw.get("cluster_class")
    if not isinstance(cls, str) or "." not in cls or " " in cls.strip():
        raise _fail(
            source,
            f"cluster_class must be an import path such as dask_jobqueue.SLURMCluster, got {cls!r}",
        )
    kwargs = raw.get("cluster_kwargs") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise _fail(source, f"cluster_kwargs must be a mapping of names, got {kwargs!r}")
    if "asynchronous" in kwargs:
        raise _fail(source, "cluster_kwargs cannot set asynchronous (Prefect manages it)")
    adapt = raw.get("adapt")
    if adapt is not None:
        if not isinstance(adapt, dict) or set(adapt) - {"minimum", "maximum"}:
            raise _fail(source, f"adapt must be {{minimum: N, maximum: M}}, got {adapt!r}")
        low, high = adapt.get("minimum", 0), adapt.get("maximum")
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high and high >= 1):
            raise _fail(source, f"adapt needs integers 0 <= minimum <= maximum, got {adapt!r}")
        adapt = {"minimum": low, "maximum": high}
    return ClusterConfig(cls.strip(), dict(kwargs), adapt, source)


def load_config(path: str | Path) -> ClusterConfig:
    """Read and validate a YAML config file."""
    path = Path(path).expanduser()
    raw = read_yaml(path, "cluster config")
    return parse_config(raw, str(path))


def resolve_class(config: ClusterConfig) -> type:
    """Import the cluster class; a missing optional package names the extra to install."""
    module_name, _, attr = config.cluster_class.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        top = module_name.split(".")[0]
        extra = EXTRAS.get(top)
        how = f"pip install '.[{extra}]'" if extra else f"install the package providing {top}"
        raise _fail(
            config.source, f"cluster_class {config.cluster_class} needs {exc.name}: {how}"
        ) from None
    cls = getattr(module, attr, None)
    if not inspect.isclass(cls):
        raise _fail(config.source, f"{module_name} has no class {attr!r}")
    return cls


def check_kwargs(config: ClusterConfig, cls: type) -> None:
    """Unknown keyword arguments, when the class's signature lists them all."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(config.cluster_kwargs) - set(parameters))
    if unknown:
        raise _fail(
            config.source, f"{config.cluster_class} takes no argument(s) {', '.join(unknown)}"
        )


def validate(path: str | Path) -> ClusterConfig:
    """Load, resolve and check a config: everything short of starting the cluster."""
    config = load_config(path)
    check_kwargs(config, resolve_class(config))
    return config
