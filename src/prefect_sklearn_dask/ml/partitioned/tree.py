"""A tree of ``dask.delayed`` merges: many small partition results become one on the
workers, with no single task holding them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FAN_IN = 16


def tree_reduce(combine: Callable[[list[Any]], Any], parts: list[Any], fan_in: int = FAN_IN):
    """``combine`` applied in groups of ``fan_in`` until one delayed value is left."""
    import dask

    level = list(parts)
    if not level:
        raise ValueError("nothing to reduce")
    while True:
        level = [dask.delayed(combine)(level[i : i + fan_in]) for i in range(0, len(level), fan_in)]
        if len(level) == 1:
            return level[0]
