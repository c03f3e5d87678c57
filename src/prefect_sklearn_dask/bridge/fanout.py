"""Run many small calls from one Prefect task: plain Dask work on a cluster, or threads.

A model's search is one Prefect task run; its candidate x fold fits are not. Recording a
task run costs ~28 ms of CPU (flow 5.6 + worker task engine 11.2 + server 11.7 ms,
benchmarks/README.md), which made the benchmark's 110-fit grid 2.0x raw Dask when every
fit was a task run. Here each fit is one plain Dask task and nothing on the Prefect server.

Where the calls are driven from decides the rest. A search task that ran *on a worker*
and fanned out through :func:`distributed.worker_client` measured 1.9x raw Dask on the
108-fit grid (2 workers, quiet machine): its fits ran 20-50% slower (27 -> 31-40 ms of
compute each, the drivers' result handling and Prefect logging shared the workers' GIL),
left 5-7 ms idle per fit on each worker (vs 1.3 ms), and the last searches waited behind
the first ones' fits for a worker slot. So ``train-flow`` runs its search tasks in the
flow's process (threads) inside :func:`fits_on`, and their fits go to the cluster through
the flow's own :class:`distributed.Client` as raw ``client.map`` sends them: the whole
flow run measured 1.17x raw Dask on 1,005 fits, the searches alone 1.12x (2.23x before;
benchmarks/README.md "search"). The worker path stays for a search task someone submits
to a Dask runner themselves (it secedes while it waits, so a one-thread worker does not
deadlock); a search called inline in a flow whose runner is Dask uses that runner's
client. Without Dask the calls run on a thread pool shared by the process, sized once, so
several searches at once do not multiply the threads.

    from prefect_sklearn_dask.bridge.fanout import fan_out
    squares = fan_out(pow, [(2, 2), (3, 2)], limit=8, local_jobs=2)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import ContextVar
from typing import Any
from uuid import uuid4

OnDone = Callable[[int, Any], None]

COLLECT_EVERY_S = 0.1
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()
_CLIENT: ContextVar[Any] = ContextVar("fan_out_client", default=None)
_SLOTS: ContextVar[threading.BoundedSemaphore | None] = ContextVar("fan_out_slots", default=None)


@contextlib.contextmanager
def fits_on(client: Any, max_in_flight: int | None = None) -> Iterator[None]:
    """Send the fan-outs made in this context to ``client``'s cluster, from this process.

    The setting travels with the context, so tasks a ``ThreadPoolTaskRunner`` starts
    from here inherit it. ``max_in_flight`` caps the calls running at once across all
    of those fan-outs together (``--max-concurrent``), not per call.
    """
    slots = threading.BoundedSemaphore(max_in_flight) if max_in_flight else None
    tokens = (_CLIENT.set(client), _SLOTS.set(slots))
    try:
        yield
    finally:
        _CLIENT.reset(tokens[0])
        _SLOTS.reset(tokens[1])


def on_dask_worker() -> bool:
    """True inside a task a Dask worker runs (where ``worker_client`` works)."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def _flow_runner_client() -> Any:
    """The Dask client of the current flow run's task runner, if it has a running one."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None) if context else None
    try:
        return getattr(runner, "client", None)
    except RuntimeError:  # a Dask runner that has not started its client
        return None


def current_client() -> Any:
    """The client this context's Dask work goes to: :func:`fits_on`'s, else (outside a
    worker) the flow run's Dask runner's; None when there is none.

    A task that drives its own Dask work (a search, a model trained on partitioned data)
    calls this rather than ``distributed.get_client()``, so its work follows the flow's
    client and its :func:`fits_on` cap.
    """
    return _CLIENT.get() or (None if on_dask_worker() else _flow_runner_client())


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

    At most ``limit`` calls of this fan-out in flight (None: all at once on Dask,
    ``local_jobs`` in threads), and at most :func:`fits_on`'s cap over all fan-outs.
    ``on_done(index, result)`` runs in the caller's thread as each finishes. An exception
    from a call (a lost worker, not a failing fit: those return a result) propagates once
    the calls still running are cancelled.
    """
    if not calls:
        return []
    client = current_client()
    if client is not None:
        return _drive(client, fn, calls, limit, on_done, key_prefix, _SLOTS.get())
    if on_dask_worker():
        from distributed import worker_client

        with worker_client() as client:  # secedes now, rejoins the worker's pool on exit
            return _drive(client, fn, calls, limit, on_done, key_prefix, None)
    if local_jobs <= 1 or len(calls) == 1:
        results = []
        for index, args in enumerate(calls):
            results.append(fn(*args))
            if on_done:
                on_done(index, results[-1])
        return results
    return _on_threads(fn, calls, min(limit or local_jobs, local_jobs), local_jobs, on_done)


def _take_slots(slots: threading.BoundedSemaphore | None, wanted: int, running: Any) -> int:
    """How many of ``wanted`` calls may go out now within :func:`fits_on`'s shared cap
    (None: all). Blocks for a slot only with nothing of the caller's ``running``; with
    calls running it takes free slots only, so fan-outs sharing ``slots`` cannot starve
    each other."""
    if slots is None:
        return wanted
    taken = 0
    while taken < wanted and slots.acquire(blocking=not (running or taken)):
        taken += 1
    return taken


def _drive(client, fn, calls, limit, on_done, key_prefix, slots) -> list[Any]:
    """Submit through ``client`` and collect as they finish, within ``limit`` and ``slots``.

    Calls go out in as few ``client.map`` messages as the caps allow (one per search when
    uncapped, as raw ``client.map`` does), and finished results come back in batches, one
    ``gather`` each: a message per fit each way measured ~10 ms of extra CPU per fit on
    the 1,005-fit grid (1.46x raw Dask on 2 cores). With everything submitted, batches
    are collected at most every :data:`COLLECT_EVERY_S`, which delays progress lines,
    not fits. Shared slots are taken by :func:`_take_slots`.
    """
    from distributed import as_completed

    results: list[Any] = [None] * len(calls)
    run = uuid4().hex[:8]
    queue = iter(range(len(calls)))
    running: dict[str, tuple[int, Any]] = {}
    done = as_completed(loop=client.loop)
    cap = limit or len(calls)
    left = len(calls)

    def submit_more() -> None:
        nonlocal left
        allowed = _take_slots(slots, min(left, cap - len(running)), running)
        picked = [next(queue) for _ in range(allowed)]
        left -= len(picked)
        if not picked:
            return
        futures = client.map(
            fn,
            *zip(*(calls[i] for i in picked), strict=True),
            key=[f"{key_prefix}-{run}-{i}" for i in picked],
            pure=False,
        )
        for index, future in zip(picked, futures, strict=True):
            running[future.key] = (index, future)
        done.update(futures)

    submit_more()
    try:
        for batch in done.batches():
            if not left and len(running) > len(batch):  # let more finish before a round trip
                time.sleep(COLLECT_EVERY_S)
                batch += done.next_batch(block=False)
            values = client.gather(batch)  # a call that raised raises here
            for future, result in zip(batch, values, strict=True):
                index, _ = running.pop(future.key)
                if slots is not None:
                    slots.release()
                results[index] = result
                if on_done:
                    on_done(index, result)
            del batch, values  # the last references: the workers drop those results
            submit_more()
    except BaseException:
        client.cancel([future for _, future in running.values()])
        if slots is not None:
            for _ in running:
                slots.release()
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


class _InlineStream:
    """Each call runs when submitted (``--runner sequential``)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.capacity = fn, 1
        self._done: list[tuple[Hashable, Any]] = []

    def submit(self, tag: Hashable, *args: Any) -> None:
        self._done.append((tag, self.fn(*args)))

    def completed(self) -> list[tuple[Hashable, Any]]:
        done, self._done = self._done, []
        return done

    def cancel(self) -> None:
        self._done.clear()


class _ThreadStream:
    """Calls on the process's shared pool of ``size`` threads."""

    def __init__(self, fn: Callable[..., Any], size: int) -> None:
        self.fn, self.capacity = fn, size
        self._pool = _shared_pool(size)
        self._running: dict[Future, Hashable] = {}

    def submit(self, tag: Hashable, *args: Any) -> None:
        self._running[self._pool.submit(self.fn, *args)] = tag

    def completed(self) -> list[tuple[Hashable, Any]]:
        finished, _ = wait(self._running, return_when=FIRST_COMPLETED)
        return [(self._running.pop(future), future.result()) for future in finished]

    def cancel(self) -> None:
        for future in self._running:
            future.cancel()


class _DaskStream:
    """Plain Dask tasks through ``client``, with as few messages as the driver allows.

    Calls submitted go out together when the driver next waits (:meth:`completed`), in
    one ``client.map``; finished ones come back one ``gather`` per batch, and while at
    least ``2 x capacity`` others are still running (the workers stay fed without the
    driver) a batch waits for more. With a message per fold each way, the optuna
    search's driver took 2.4-3.3 s of client-and-scheduler CPU where raw ``client.map``
    of the same 450 breast_cancer fits took ~1.0 s: on 2 cores that CPU is the workers',
    and the search ran 1.34x raw; batched, 1.5-2.1 s and 0.99x (medians of 3,
    ``pruner="none"``). A trial held back by pruning has one fold in flight, so pruned
    searches keep a round trip per fold. Within :func:`fits_on`'s shared cap (``slots``)
    calls wait here until :func:`_take_slots` gives them a slot.
    """

    def __init__(self, client: Any, fn: Callable[..., Any], key_prefix: str, slots) -> None:
        from distributed import as_completed

        self.client, self.fn, self.slots = client, fn, slots
        self.capacity = max(1, sum(client.nthreads().values()))
        self._key = f"{key_prefix}-{uuid4().hex[:8]}"
        self._count = 0
        self._pending: list[tuple[Hashable, tuple[Any, ...]]] = []
        self._running: dict[str, tuple[Hashable, Any]] = {}
        self._done = as_completed(loop=client.loop)

    def submit(self, tag: Hashable, *args: Any) -> None:
        self._pending.append((tag, args))

    def _pump(self) -> None:
        taken = _take_slots(self.slots, len(self._pending), self._running)
        picked, self._pending = self._pending[:taken], self._pending[taken:]
        if not picked:
            return
        keys = [f"{self._key}-{self._count + i}" for i in range(1, len(picked) + 1)]
        self._count += len(picked)
        futures = self.client.map(
            self.fn, *zip(*(args for _, args in picked), strict=True), key=keys, pure=False
        )
        for (tag, _), future in zip(picked, futures, strict=True):
            self._running[future.key] = (tag, future)
        self._done.update(futures)

    def completed(self) -> list[tuple[Hashable, Any]]:
        self._pump()
        batch = self._done.next_batch(block=True)
        while len(self._running) - len(batch) >= 2 * self.capacity:
            batch += self._done.next_batch(block=True)  # the workers are still fed
        values = self.client.gather(batch)  # a call that raised (a lost worker) raises here
        out = []
        for future, value in zip(batch, values, strict=True):
            tag, _ = self._running.pop(future.key)
            if self.slots is not None:
                self.slots.release()
            out.append((tag, value))
        return out

    def cancel(self) -> None:
        self.client.cancel([future for _, future in self._running.values()])
        if self.slots is not None:
            for _ in self._running:
                self.slots.release()
        self._running.clear()
        self._pending.clear()


@contextlib.contextmanager
def fold_stream(
    fn: Callable[..., Any], *, local_jobs: int = 1, key_prefix: str = "fit"
) -> Iterator[Any]:
    """Calls submitted one at a time and taken back as they finish, where :func:`fan_out`
    would run them: for a driver that decides each next call from the last results
    (Optuna's ask-and-tell). ``stream.submit(tag, *args)``; ``stream.completed()`` blocks
    until one or more calls finished and returns their ``(tag, result)``;
    ``stream.capacity`` is how many can run at once (the cluster's threads). Calls still
    running when the block raises are cancelled.
    """
    client = _CLIENT.get() or (None if on_dask_worker() else _flow_runner_client())
    with contextlib.ExitStack() as stack:
        if client is not None:
            stream: Any = _DaskStream(client, fn, key_prefix, _SLOTS.get())
        elif on_dask_worker():
            from distributed import worker_client

            client = stack.enter_context(worker_client())
            stream = _DaskStream(client, fn, key_prefix, None)
        elif local_jobs <= 1:
            stream = _InlineStream(fn)
        else:
            stream = _ThreadStream(fn, local_jobs)
        try:
            yield stream
        except BaseException:
            stream.cancel()
            raise
