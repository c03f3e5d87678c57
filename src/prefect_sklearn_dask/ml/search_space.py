"""What a search tries per model: the registry's grid or distributions, or a user's file.

A search-space file (``--search-space FILE.yaml``, or the ``search_space`` flow parameter as
the same mapping) replaces the named models' spaces and leaves the others alone::

    svc:
      C: loguniform(0.01, 100)      # a scipy.stats distribution (random / halving only)
      gamma: [scale, 0.001, 0.01]   # a list of values (every kind of search)
    rf:
      n_estimators: [100, 300]
      max_depth: 10                 # one value: a list of one

Distributions are written as text, ``name(number, ...)`` with ``name`` one of
:data:`DISTRIBUTIONS`, so the mapping stays plain JSON for a deployment's parameters.
Every mistake is a :class:`~.errors.UserError` naming the model and the parameter.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from scipy import stats

from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.ml.registry import REGISTRY, build_estimator, get_spec
from prefect_sklearn_dask.yaml_file import read_yaml

DISTRIBUTIONS = ("loguniform", "uniform", "randint", "expon", "norm")
_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$")
Space = dict[str, Any]


def parse_distribution(model: str, param: str, text: str):
    """``"loguniform(1e-3, 1e3)"`` -> the frozen scipy.stats distribution."""
    where = f"search space of {model!r}, parameter {param!r}"
    match = _CALL.match(text)
    if not match:
        raise UserError(
            f"{where}: cannot parse {text!r}; write a list of values or a distribution "
            f"like loguniform(0.001, 100) ({', '.join(DISTRIBUTIONS)})"
        )
    name, raw_args = match.groups()
    if name not in DISTRIBUTIONS:
        raise UserError(
            f"{where}: unknown distribution {name!r}; choose from {', '.join(DISTRIBUTIONS)}"
        )
    try:
        args = ast.literal_eval(f"({raw_args},)") if raw_args.strip() else ()
        if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
            raise ValueError("arguments must be numbers")
        frozen = getattr(stats, name)(*args)
        frozen.rvs(random_state=0)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise UserError(f"{where}: cannot parse distribution {text!r}: {exc}") from None
    return frozen


def _values(model: str, param: str, raw: Any, kind: str) -> Any:
    if isinstance(raw, str) and "(" in raw:  # meant as a distribution, parseable or not
        if kind == "grid":
            raise UserError(
                f"search space of {model!r}, parameter {param!r}: --search grid needs a list "
                f"of values, got the distribution {raw!r} (use --search random or halving)"
            )
        return parse_distribution(model, param, raw)
    values = list(raw) if isinstance(raw, list | tuple) else [raw]
    if not values:
        raise UserError(
            f"search space of {model!r}, parameter {param!r} is an empty list; "
            "give at least one value"
        )
    return [tuple(v) if isinstance(v, list) else v for v in values]


def parse_space(raw: Mapping[str, Any] | None, kind: str) -> dict[str, Space]:
    """Validate a user's search space: known models, parameters they take, parseable values."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise UserError("the search space must map model names to {parameter: values}")
    spaces: dict[str, Space] = {}
    for model, params in raw.items():
        if model not in REGISTRY:
            raise UserError(
                f"search space names unknown model {model!r}; choose from: "
                f"{', '.join(sorted(REGISTRY))}"
            )
        if not isinstance(params, Mapping) or not params:
            raise UserError(
                f"search space of {model!r} is empty; give {{parameter: [values]}} for it"
            )
        takes = sorted(build_estimator(model, 0).get_params(deep=False))
        unknown = sorted(set(map(str, params)) - set(takes))
        if unknown:
            raise UserError(
                f"search space of {model!r}: the estimator takes no parameter "
                f"{', '.join(unknown)}; it takes: {', '.join(takes)}"
            )
        spaces[model] = {str(p): _values(model, str(p), v, kind) for p, v in params.items()}
    return spaces


def load_space_file(path: str) -> dict[str, Any]:
    """The raw mapping in a YAML file (validated later by :func:`parse_space`)."""
    raw = read_yaml(path, "search space file")
    if not isinstance(raw, dict):
        raise UserError(f"search space file {path!r} must map model names to {{parameter: values}}")
    return raw


def space_for(model: str, kind: str, overrides: Mapping[str, Space] | None = None) -> Space:
    """The space ``model`` is searched over: the user's, else the registry's."""
    if overrides and model in overrides:
        return dict(overrides[model])
    spec = get_spec(model)
    space = dict(spec.grid if kind == "grid" else spec.distributions or spec.grid)
    if not space:
        raise UserError(f"model {model!r} has no search space; give one in --search-space")
    return space
