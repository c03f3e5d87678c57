"""A tree of ``dask.delayed`` merges: many small partition results become one on the
workers, with no single task holding them all; :func:`fetch` brings the one result to
the caller and counts its bytes (:data:`RECEIVED`: what the caller's process received,
the benchmark's "bytes to the flow's process")."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any


class Received:
    """Bytes of the results :func:`fetch` brought into this process (pickled size)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0

    def add(self, value: Any) -> None:
        size = len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        with self._lock:
            self.bytes += size


RECEIVED = Received()


def fetch(client, value) -> Any:
    """Compute ``value`` (a delayed or collection) on ``client``'s cluster, return it here."""
    result = client.compute(value).result()
    RECEIVED.add(result)
    return result


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
