"""Run many small calls from inside one task: plain Dask work on its cluster, or threads.

A model's search is one Prefect task run; its candidate x fold fits are not. Recording a
task run costs ~28 ms of CPU (flow 5.6 + worker task engine 11.2 + server 11.7 ms,
benchmarks/README.md), which made the benchmark's 110-fit grid 2.0x raw Dask when every
fit was a task run. Here the search task, running on a Dask worker, submits its fits to
the same cluster through :func:`distributed.worker_client` (which secedes the task's
thread while it waits, so a worker running the search does not sit idle or deadlock a
one-thread worker) and gathers them as they finish: per fit, one Dask task and nothing
on the Prefect server. Outside a Dask worker (``threads``/``sequential`` runners) the same
calls run on a thread pool shared by the process, sized once, so several searches at once
do not multiply the threads.

    from prefect_sklearn_dask.bridge.fanout import fan_out
    squares = fan_out(pow, [(2, 2), (3, 2)], limit=8, local_jobs=2)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any
from uuid import uuid4

OnDone = Callable[[int, Any], None]

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def on_dask_worker() -> bool:
    """True inside a task a Dask worker runs (where ``worker_client`` works)."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def fan_out(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    limit: int | None = None,
    local_jobs: int = 1,
    on_done: OnDone | None = None,
    key_prefix: str = "fit",
) -> list[Any]:
    """``[fn(*args) for args in calls]``, spread out; results in the order of ``calls``.

    At most ``limit`` calls in flight (None: all at once on Dask, ``local_jobs`` in
    threads). ``on_done(index, result)`` runs in the caller's thread as each finishes.
    An exception from a call (a lost worker, not a failing fit: those return a result)
    propagates once the calls already running are released.
    """
    if not calls:
        return []
    if on_dask_worker():
        return _on_dask(fn, calls, limit, on_done, key_prefix)
    if local_jobs <= 1 or len(calls) == 1:
        results = []
        for index, args in enumerate(calls):
            results.append(fn(*args))
            if on_done:
                on_done(index, results[-1])
        return results
    return _on_threads(fn, calls, min(limit or local_jobs, local_jobs), local_jobs, on_done)


def _on_dask(fn, calls, limit, on_done, key_prefix) -> list[Any]:
    from distributed import as_completed, worker_client

    results: list[Any] = [None] * len(calls)
    run = uuid4().hex[:8]
    queue = iter(range(len(calls)))
    with worker_client() as client:  # secedes now, rejoins the worker's pool on exit
        running: dict[str, tuple[int, Any]] = {}
        done = as_completed()

        def submit(index: int | None) -> None:
            if index is None:
                return
            future = client.submit(fn, *calls[index], pure=False, key=f"{key_prefix}-{run}-{index}")
            running[future.key] = (index, future)
            done.add(future)

        for index in islice(queue, limit or len(calls)):
            submit(index)
        try:
            for future in done:
                index, _ = running.pop(future.key)
                results[index] = future.result()
                future.release()
                if on_done:
                    on_done(index, results[index])
                submit(next(queue, None))
        except BaseException:
            client.cancel([future for _, future in running.values()])
            raise
    return results


def _shared_pool(size: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        if size not in _POOLS:
            _POOLS[size] = ThreadPoolExecutor(size, thread_name_prefix="fan-out")
        return _POOLS[size]


def _on_threads(fn, calls, in_flight: int, pool_size: int, on_done) -> list[Any]:
    pool = _shared_pool(pool_size)
    results: list[Any] = [None] * len(calls)
    pending = iter(range(len(calls)))
    running: dict[Future, int] = {}

    def submit_next() -> None:
        index = next(pending, None)
        if index is not None:
            running[pool.submit(fn, *calls[index])] = index

    for _ in range(in_flight):
        submit_next()
    try:
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                results[index] = future.result()
                if on_done:
                    on_done(index, results[index])
                submit_next()
    except BaseException:
        for future in running:
            future.cancel()
        raise
    return results
