"""Which earlier fits a run may reuse: what an unfinished identical run left, nothing more.

Every finished fit is persisted under a cache key made of its inputs, its task's source
and a *generation* of the run's parameter set (data fingerprint, split, seed, CV, models).
A run fits in the current generation; when it completes it advances that generation, so
the next identical run trains again. Before this, ``--runner threads`` right after
``make run`` "trained" 8 of 8 fits in 0.70 s from the dask run's cache: comparing runners
compared cache reads. A run that died (SIGKILL, lost server, too many failures) never
advances its generation, so re-running its command resumes from the fits it finished.
``reuse=True`` (``--reuse-fits``) fits in the last completed generation instead and
leaves the counter alone: it reuses the fits of finished runs on purpose.

Any task that persists fits follows the same rules by adding :meth:`FitCache.policy` to
its cache policy::

    cache = open_fit_cache(storage_root / "fit-cache", {"data": ref.fingerprint, ...})
    task.with_options(cache_policy=FIT_CACHE + cache.policy(), result_storage=cache.root)
    ...                                   # the run completes
    cache.complete()
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy

GENERATIONS_DIR = "generations"


@dataclass
class Generation(CachePolicy):
    """A constant part of every cache key: the run's parameter set and its generation."""

    namespace: str = ""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs: Any) -> str:
        return self.namespace


def parameter_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able parameter set (key order does not matter)."""
    body = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(body).hexdigest()[:16]


@dataclass(frozen=True)
class FitCache:
    """The fit cache of one run: where fits live and which generation it fits in."""

    root: Path
    params_key: str
    generation: int
    completed_runs: int
    reuse: bool

    @property
    def namespace(self) -> str:
        return f"{self.params_key}/{self.generation}"

    def policy(self) -> CachePolicy:
        """Add to a task's cache policy so its fits land in this run's generation."""
        return Generation(namespace=self.namespace)

    def complete(self) -> None:
        """The run finished: the next identical run (without ``reuse``) trains again."""
        with _counter(self.root, self.params_key) as (read, write):
            if read() <= self.generation:
                write(self.generation + 1)

    def describe(self, reused: int, fits: int) -> str:
        """One line saying what the cache did this run, and how to get the other behaviour."""
        if self.reuse:
            source = "earlier completed runs" if self.completed_runs else "unfinished runs"
            return f"--reuse-fits: reused {reused} of {fits} fits from {source}"
        if reused:
            return (
                f"resumed: reused {reused} of {fits} fits an unfinished run of the same "
                "command left; trained the rest"
            )
        if self.completed_runs:
            return (
                f"trained all {fits} fits: an identical run completed before "
                "(--reuse-fits reuses its fits)"
            )
        return f"trained all {fits} fits (none cached for these parameters)"


def open_fit_cache(root: Path, params: Mapping[str, Any], reuse: bool = False) -> FitCache:
    """The fit cache for a run with ``params``: the current generation, or with ``reuse``
    the last completed one (the current one when none has completed)."""
    key = parameter_key(params)
    with _counter(root, key) as (read, _):
        completed = read()
    generation = completed - 1 if reuse and completed else completed
    return FitCache(
        root=root, params_key=key, generation=generation, completed_runs=completed, reuse=reuse
    )


@contextmanager
def _counter(root: Path, key: str) -> Iterator[tuple[Any, Any]]:
    """Read and write the completed-run count of ``key`` under an exclusive file lock."""
    path = root / GENERATIONS_DIR / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)

        def read() -> int:
            try:
                return int(json.loads(path.read_text())["completed_runs"])
            except (OSError, ValueError, KeyError, TypeError):
                return 0

        def write(value: int) -> None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"completed_runs": value}))
            tmp.replace(path)

        try:
            yield read, write
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
