"""What the flow does when the Dask cluster under it fails, rather than what Prefect does.

Three failures arrive as Dask exceptions, not as Prefect task states:

- **A worker dies too often on one task** (``KilledWorker``: it crashed, or its nanny
  killed it for exceeding its memory limit). The Prefect task run never hears of it
  and stays ``Running`` on the server (the upstream report: prefect #21638). The flow
  marks it ``Failed`` itself and makes the model a failed row naming the model and
  the workers' memory limit.
- **The scheduler goes away** (its futures are cancelled with ``scheduler-connection-
  lost``). Left alone, the client retries for 30 s and the run then fails with an
  unrelated ``AttributeError`` from the performance report. The flow closes the client
  at once and fails with one :class:`SchedulerLost` line; finished fits are cached, so
  a re-run after restarting the cluster resumes.
- A single worker SIGKILL is none of these: Dask re-runs the task elsewhere.

And one Prefect failure: **the Prefect server goes away** mid-run. Task-run states
travel as events over a websocket; while the server is down Prefect drops them with a
multi-line ``EventsWorker failed to process item Event(...)`` error per event, and the
run itself carries on (its own API calls are retried). :class:`EventDropFilter` turns
those into one warning and counts them, so the flow can say what the UI will lack.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from distributed import Client
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

LOST_REASON = "scheduler-connection-lost"
RESTART_WAIT_S = 10.0  # a nanny restarts its worker in a few seconds


class SchedulerLost(RuntimeError):
    """The Dask scheduler went away mid-run."""


def scheduler_lost(exc: BaseException) -> bool:
    return isinstance(exc, FutureCancelledError) and exc.reason == LOST_REASON


def lost_scheduler_error(client: Client, finished: int, total: int) -> SchedulerLost:
    """Close the client now (no 30 s of reconnecting) and say what to do, in one line."""
    address = getattr(client.scheduler, "address", None) or "its address"
    with contextlib.suppress(Exception):
        client.close(timeout=3)
    return SchedulerLost(
        f"lost the Dask scheduler at {address} mid-run ({finished} of {total} fits had "
        "finished; the fit cache keeps them unless --no-cache); restart the cluster and "
        "run the same command again to train the rest"
    )


@contextlib.contextmanager
def lost_scheduler_fails_fast(client: Client | None, finished: int = 0, total: int = 0):
    """Inside: a lost scheduler raises :class:`SchedulerLost` at once."""
    try:
        yield
    except Exception as exc:
        if client is not None and scheduler_lost(exc):
            raise lost_scheduler_error(client, finished, total) from None
        raise


def find_lost(exc: BaseException | None) -> SchedulerLost | None:
    """The :class:`SchedulerLost` in ``exc``'s chain (a runner's exit may raise over it)."""
    while exc is not None:
        if isinstance(exc, SchedulerLost):
            return exc
        exc = exc.__context__
    return None


def memory_limit(client: Client | None) -> str | None:
    """The workers' memory limit, e.g. ``'600 MiB per worker'`` (None: unknown or none)."""
    if client is None:
        return None
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        if not workers:  # every worker died at once: read the limit off the first restarted
            client.wait_for_workers(1, timeout=RESTART_WAIT_S)
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
    except Exception:
        return None
    limits = sorted({w.get("memory_limit") or 0 for w in workers})
    if not limits or not limits[-1]:
        return None
    return " / ".join(f"{limit / 2**20:.0f} MiB" for limit in limits) + " per worker"


def describe(model: str, exc: BaseException, client: Client | None) -> str:
    """The failed row's error: a ``KilledWorker`` names the model and the memory limit."""
    if isinstance(exc, KilledWorker):
        limit = memory_limit(client)
        why = f"out of memory? the memory limit is {limit}" if limit else "crashed"
        return (
            f"KilledWorker: the Dask worker training {model!r} died "
            f"{exc.allowed_failures + 1} time(s) ({why}); Dask gave up on it"
        )
    return f"{type(exc).__name__}: {exc}"


def orphaned(future: Any) -> bool:
    """True when the Dask future itself failed: no Prefect engine recorded a final state."""
    wrapped = getattr(future, "wrapped_future", None)
    return getattr(wrapped, "status", None) in {"error", "cancelled", "lost"}


def mark_failed(
    task_run_id: Any, message: str, task: Any, flow_run_id: Any, name: str, logger: Any
) -> None:
    """Move a task run the engine could not finish to ``Failed`` on the server.

    A worker SIGKILLed early may never have sent the run's events, so the server may
    not know the run at all: then it is created, already Failed. Best effort: a
    server that cannot be told is logged, not allowed to fail the comparison.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.states import Failed

    try:
        with get_client(sync_client=True) as api:
            try:
                api.set_task_run_state(task_run_id, Failed(message=message), force=True)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
                api.create_task_run(
                    task,
                    flow_run_id,
                    dynamic_key=str(task_run_id),
                    id=task_run_id,
                    name=name,
                    state=Failed(message=message),
                )
    except Exception as exc:
        logger.warning(f"could not mark task run {name} Failed on the server: {exc}")


class EventDropFilter(logging.Filter):
    """Count Prefect's dropped-event errors; show the first as one line, hide the rest."""

    MARKER = "Service 'EventsWorker' failed to process item"

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("prefect._internal") or not record.getMessage().startswith(
            self.MARKER
        ):
            return True
        with self._lock:
            self.dropped += 1
            first = self.dropped == 1
        if first:
            record.msg = (
                "cannot send task-run events to the Prefect server (unreachable?); the run "
                "goes on and keeps its results here, the UI will miss what is dropped"
            )
            record.args, record.exc_info, record.exc_text = None, None, None
        return first


EVENT_DROPS = EventDropFilter()


def install_event_drop_filter() -> None:
    from prefect_sklearn_dask.masking import add_handler_filter

    add_handler_filter(EVENT_DROPS)


def outage_warning(dropped: int, storage: str) -> str | None:
    """The one line a run prints when the server missed some of it (None: it missed none)."""
    if not dropped:
        return None
    return (
        f"the Prefect server was unreachable during the run: {dropped} task-run event(s) were "
        "lost, so the UI may show some task runs as Pending/Running or not at all; the "
        f"results below are complete and stored locally under {storage}"
    )
