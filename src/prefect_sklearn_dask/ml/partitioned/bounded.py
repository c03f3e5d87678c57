"""A wait on the cluster that always ends: xgboost.dask training waits forever when a
worker that holds its data leaves (dmlc/xgboost #9419, #9420).

:func:`bounded_call` runs the call in a daemon thread and watches the cluster: a worker
that leaves (or restarts) during the call, or the deadline, ends the wait at once with a
:class:`ClusterChanged` or :class:`TrainingTimeout` (both retried by the flow's task,
which is not a user error), and cancels the futures the call left running, so their
locks and data are released.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.5


class ClusterChanged(RuntimeError):
    """A worker left or restarted while the cluster was training together."""


class TrainingTimeout(TimeoutError):
    """The call ran past its deadline."""


def worker_ids(client) -> dict[str, str]:
    """address -> the worker process's id: a restarted worker keeps no old id."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return {address: info.get("id", address) for address, info in workers.items()}


def bounded_call(
    client,
    call: Callable[[], T],
    timeout: float,
    what: str,
    poll: float = POLL_SECONDS,
    key_names: tuple[str, ...] = (),
    drain_seconds: float = 0.0,
) -> T:
    """``call()``, unless a worker leaves or ``timeout`` seconds pass first.

    ``key_names``: task-name fragments of the futures the call submits; on abort those
    futures (created during the call) are cancelled.
    """
    before = worker_ids(client)
    known = set(client.futures)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with client.as_current():  # libraries that look for "the" client find this one
                outcome["value"] = call()
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"bounded-{what}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while True:
        thread.join(poll)
        if not thread.is_alive():
            break
        now = worker_ids(client)
        lost = [a for a, i in before.items() if now.get(a) != i]
        if lost:
            _cancel_new(client, known, key_names)
            drain(client, key_names, drain_seconds, poll)
            raise ClusterChanged(
                f"{what}: worker(s) {', '.join(sorted(lost))} left or restarted during "
                "training; retrying on the workers there are"
            )
        if time.monotonic() > deadline:
            _cancel_new(client, known, key_names)
            drain(client, key_names, drain_seconds, poll)
            raise TrainingTimeout(f"{what} took longer than {timeout:.0f} s; stopped")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _cancel_new(client, known: set, key_names: tuple[str, ...]) -> None:
    from distributed import Future

    stale = [
        key
        for key in list(client.futures)
        if key not in known and any(name in str(key) for name in key_names)
    ]
    if stale:
        client.cancel([Future(key, client) for key in stale], force=True)


def _executing(names: tuple[str, ...], dask_worker=None) -> list[str]:
    """On a worker: the running tasks (cancelled ones included) whose key matches."""
    keys = (str(ts.key) for ts in dask_worker.state.executing)
    return [key for key in keys if any(name in key for name in names)]


def drain(client, key_names: tuple[str, ...], seconds: float, poll: float = POLL_SECONDS) -> None:
    """Wait up to ``seconds`` until no worker runs a task matching ``key_names``; then
    restart the workers that still do (their nannies start them afresh)."""
    if not key_names:
        return
    deadline = time.monotonic() + seconds
    while True:
        stuck = sorted(a for a, keys in client.run(_executing, key_names).items() if keys)
        if not stuck:
            return
        if time.monotonic() >= deadline:
            client.restart_workers(stuck, raise_for_error=False)
            return
        time.sleep(poll)
