"""Let Dask size the workers' profiles: no "Sizeof calculation for object of type 'dict' failed".

A Dask run ends with its performance report, for which the scheduler asks every worker
for its statistical profile: a tree of dicts, two levels per stack frame. A Prefect task
fitting a scikit-learn pipeline runs 101 frames deep on the worker thread (measured:
iris, ``nb`` + ``logreg``, 2 workers), so the tree is ~200 dicts deep. Before sending
it, the worker's comm layer estimates its size with ``dask.sizeof``, which recurses
several Python frames per level and hits Python's default recursion limit of 1000:
a ``RecursionError``, swallowed into one ``distributed.sizeof - WARNING`` line per
worker (the message is then serialized in a thread, as a big one would be). With the
workers' limit at :data:`RECURSION_LIMIT` the estimate completes: 0 warnings instead of
2 in the same run. The same holds for ``Client.profile()`` and the dashboard's profile.
"""

from __future__ import annotations

import sys

import cloudpickle
from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin

RECURSION_LIMIT = 3000
PLUGIN_NAME = "prefect-sklearn-dask-profile-depth"


class DeepProfiles(WorkerPlugin):
    """Raise (never lower) the worker's recursion limit, on present and future workers."""

    name = PLUGIN_NAME

    def __init__(self, limit: int = RECURSION_LIMIT) -> None:
        self.limit = limit

    def setup(self, worker) -> None:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), self.limit))


def register(client: Client) -> None:
    client.register_plugin(DeepProfiles(), name=PLUGIN_NAME)


# Workers without this project installed unpickle the plugin by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
