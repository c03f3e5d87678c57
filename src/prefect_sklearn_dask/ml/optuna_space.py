"""The project's search spaces as Optuna distributions, and the ``--pruner`` names.

A space is what :func:`~.search_space.space_for` gives (the registry's distributions or
a ``--search-space`` file): frozen ``scipy.stats`` distributions and lists of values.
Optuna's TPE needs bounded ranges and primitive choices, so::

    loguniform(a, b)  -> FloatDistribution(a, b, log=True)
    uniform(loc, w)   -> FloatDistribution(loc, loc + w)
    randint(a, b)     -> IntDistribution(a, b - 1)       (scipy's upper bound is exclusive)
    [v1, v2, ...]     -> CategoricalDistribution

Choices Optuna cannot store (a tuple such as ``hidden_layer_sizes=(64, 32)``) are stored
as their text and turned back into the value by :meth:`OptunaSpace.decode`, so the study
database holds plain JSON. Anything else (``expon``, ``norm``: unbounded) is one
:class:`~.errors.UserError` naming the model and the parameter, raised before any fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.ml.search_space import Space

PRUNERS: tuple[str, ...] = ("median", "hyperband", "none")
_PRIMITIVE = (type(None), bool, int, float, str)


def check_pruner(name: str | None, kind: str) -> str:
    """The pruner to use (median by default), or a UserError for a name Optuna lacks."""
    if name is None:
        return "median"
    if name not in PRUNERS:
        raise UserError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")
    if kind != "optuna" and name != "median":
        raise UserError(f"--pruner {name} needs --search optuna")
    return name


@dataclass(frozen=True)
class OptunaSpace:
    """Optuna distributions for one model, and how stored choices map back to values."""

    distributions: dict[str, Any]
    encoded: dict[str, dict[str, Any]] = field(default_factory=dict)

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's stored params as the estimator's values (tuples back from text)."""
        return {k: self.encoded[k][v] if k in self.encoded else v for k, v in params.items()}


def to_optuna(model: str, space: Space) -> OptunaSpace:
    """Map ``space`` onto Optuna's distributions; UserError for what it cannot express."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    distributions: dict[str, Any] = {}
    encoded: dict[str, dict[str, Any]] = {}
    for param, values in space.items():
        where = f"search space of {model!r}, parameter {param!r}"
        if isinstance(values, list | tuple):
            choices = list(values)
            if all(isinstance(v, _PRIMITIVE) for v in choices):
                distributions[param] = CategoricalDistribution(choices)
            else:
                names = {repr(v): v for v in choices}
                if len(names) != len(choices):
                    raise UserError(f"{where}: --search optuna needs distinct values")
                encoded[param] = names
                distributions[param] = CategoricalDistribution(list(names))
            continue
        name = getattr(getattr(values, "dist", None), "name", None)
        kwds = getattr(values, "kwds", {})
        loc, scale = kwds.get("loc", 0), kwds.get("scale", 1)
        low, high = (float(b) for b in values.support()) if name else (0.0, 0.0)
        if name in ("loguniform", "reciprocal") and loc == 0 and scale == 1:
            distributions[param] = FloatDistribution(low, high, log=True)
        elif name == "uniform":
            distributions[param] = FloatDistribution(low, high)
        elif name == "randint" and loc == 0:
            distributions[param] = IntDistribution(int(low), int(high))
        else:
            shown = f"{name}{tuple(getattr(values, 'args', ()))}" if name else repr(values)
            raise UserError(
                f"{where}: --search optuna cannot express {shown} (Optuna needs a bounded "
                "range); use loguniform(a, b), uniform(loc, width), randint(a, b) or a list"
            )
    return OptunaSpace(distributions, encoded)


def check_optuna(
    kind: str, pruner: str | None, models: list[str], spaces: Mapping[str, Space]
) -> str:
    """Validate ``--pruner`` and, with ``--search optuna``, every searched model's space
    (the user's or the registry's) before anything runs; the pruner to use."""
    from prefect_sklearn_dask.ml.search_space import space_for

    name = check_pruner(pruner, kind)
    if kind == "optuna":
        for model in models:
            to_optuna(model, space_for(model, kind, spaces))
    return name
