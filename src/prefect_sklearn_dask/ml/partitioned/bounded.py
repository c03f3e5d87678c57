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

    A call that fails while a worker leaves fails because of it (a survivor's collective
    errors as soon as its peer dies, often before the next poll): that is a
    :class:`ClusterChanged` too, so the flow retries it like any other.

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

    def abort(error: BaseException) -> BaseException:
        _cancel_new(client, known, key_names)
        drain(client, key_names, drain_seconds, poll)
        return error

    thread = threading.Thread(target=run, name=f"bounded-{what}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while True:
        thread.join(poll)
        if not thread.is_alive():
            break
        if lost := _lost(client, before):
            raise abort(_changed(what, lost))
        if time.monotonic() > deadline:
            raise abort(TrainingTimeout(f"{what} took longer than {timeout:.0f} s; stopped"))
    if "error" not in outcome:
        return outcome["value"]
    error = outcome["error"]
    lost = _lost(client, before)
    if not lost:  # the scheduler may see the departure a moment after the peer did
        time.sleep(poll)
        lost = _lost(client, before)
    if lost:
        raise abort(_changed(what, lost)) from error
    raise error


def _lost(client, before: dict[str, str]) -> list[str]:
    now = worker_ids(client)
    return sorted(a for a, i in before.items() if now.get(a) != i)


def _changed(what: str, lost: list[str]) -> ClusterChanged:
    return ClusterChanged(
        f"{what}: worker(s) {', '.join(lost)} left or restarted during training; "
        "retrying on the workers there are"
    )


def _cancel_new(client, known: set, key_names: tuple[str, ...]) -> None:
    """Cancel the futures the call created, after the futures of this client that depend
    on them (xgboost's reduction over its training tasks).

    In that order because cancelling a key that a task no client holds depends on (the
    middle of the reduction) trips distributed's ``assert ts.who_wants`` in
    ``stimulus_cancel``, and the scheduler then drops this client with every future it
    holds. Once the holder is released, the middle tasks are forgotten with it.
    """
    from distributed import Future

    stale = [
        key
        for key in list(client.futures)
        if key not in known and any(name in str(key) for name in key_names)
    ]
    if not stale:
        return
    holders = client.run_on_scheduler(_held_dependents, stale, client.id)
    for keys in (holders, stale):
        if keys:
            client.cancel([Future(key, client) for key in keys], force=True)


def _held_dependents(keys: list, client_id: str, dask_scheduler=None) -> list:
    """On the scheduler: the tasks downstream of ``keys`` that ``client_id`` holds."""
    todo = [dask_scheduler.tasks[key] for key in keys if key in dask_scheduler.tasks]
    seen: set = set()
    held = []
    while todo:
        for dependent in todo.pop().dependents:
            if dependent.key in seen:
                continue
            seen.add(dependent.key)
            todo.append(dependent)
            if any(cs.client_key == client_id for cs in dependent.who_wants or ()):
                held.append(dependent.key)
    return held


def _executing(names: tuple[str, ...], dask_worker=None) -> list[str]:
    """On a worker: the running tasks (cancelled ones included) whose key matches."""
    keys = (str(ts.key) for ts in dask_worker.state.executing)
    return [key for key in keys if any(name in key for name in names)]


def drain(client, key_names: tuple[str, ...], seconds: float, poll: float = POLL_SECONDS) -> None:
    """Wait up to ``seconds`` until no worker runs a task matching ``key_names``; then
    restart the workers that still do (their nannies start them afresh).

    A worker that cannot answer is gone, not stuck: when one peer is killed, xgboost's
    collective can end the others too, and the drain must still end in the
    :class:`ClusterChanged` it serves (CI saw ``CommClosedError`` escape instead).
    """
    if not key_names:
        return
    deadline = time.monotonic() + seconds
    while True:
        answers = client.run(_executing, key_names, on_error="ignore")
        stuck = sorted(a for a, keys in answers.items() if keys)
        if not stuck:
            return
        if time.monotonic() >= deadline:
            client.restart_workers(stuck, raise_for_error=False)
            return
        time.sleep(poll)
