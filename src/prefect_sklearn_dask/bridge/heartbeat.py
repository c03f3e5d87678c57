"""End a synchronous flow run when its work ends, not up to a second later.

Prefect 3.9 sends flow-run heartbeats (crash detection, every 180 s by default) from a
thread that ``prefect.flow_engine._send_heartbeats`` starts for each flow run and joins
at exit. Between heartbeats the thread sleeps in 1-second steps, checking its stop
event in between, so the join waits for the current step to finish: every
synchronous flow run pays up to a second after its last task (an empty ``@flow``
measured 1.10-1.45 s here, ~0.98 s of it in that join).

:func:`patch_heartbeat_wait` changes those steps, and nothing else, into one
``stop_event.wait(heartbeat_seconds)``: the thread still sends a heartbeat at the same
cadence, and the stop event now wakes it at once. It recompiles Prefect's own function
with that one edit (line numbers kept, so tracebacks still point into
``prefect/flow_engine.py``), only on the Prefect series it was written against and only
when the lines it replaces are there verbatim; otherwise it warns and leaves Prefect
as it is. Importing :mod:`prefect_sklearn_dask.bridge` applies it, so the project's
flows and any flow using ``FastDaskTaskRunner`` get it.

Measured (2 cores, persistent local server; ``python -m
prefect_sklearn_dask.benchmarks.empty_flow``), an empty ``@flow``, median of 20 calls,
two runs each: 1.13 and 1.22 s stock, 0.21 and 0.18 s patched (~0.95 s less per run).
"""

from __future__ import annotations

import ast
import inspect
import warnings

PREFECT_SERIES = "3.9."

# The lines of prefect.flow_engine._send_heartbeats.heartbeat_loop that are replaced,
# and what replaces them: the same number of lines, so line numbers do not move.
EXPECTED = """\
            # Sleep in increments to allow quick shutdown
            for _ in range(heartbeat_seconds):
                if stop_event.is_set():
                    return
                time.sleep(1)
"""
REPLACEMENT = """\
            # Sleep until the next heartbeat, woken at once when the flow run ends
            # (prefect_sklearn_dask.bridge.heartbeat: Prefect 3.9 slept in 1-s steps,
            # so its join at exit waited up to a second).
            if stop_event.wait(heartbeat_seconds):
                return
"""

_PATCHED = "__prefect_sklearn_dask_patched__"


def heartbeat_source() -> tuple[str, int, str]:
    """Prefect's ``_send_heartbeats``: its source, first line number and file."""
    from prefect import flow_engine

    original = inspect.unwrap(flow_engine._send_heartbeats)
    lines, first = inspect.getsourcelines(original)
    return "".join(lines), first, inspect.getsourcefile(original) or "<prefect.flow_engine>"


def why_not_patchable() -> str | None:
    """Why the patch does not apply to the installed Prefect, or None when it does."""
    import prefect

    if not prefect.__version__.startswith(PREFECT_SERIES):
        return f"written for Prefect {PREFECT_SERIES}x, found {prefect.__version__}"
    source, _, _ = heartbeat_source()
    found = source.count(EXPECTED)
    if found != 1:
        return f"the 1-second sleep loop it replaces is in _send_heartbeats {found} times, not 1"
    return None


def is_patched() -> bool:
    from prefect import flow_engine

    return getattr(flow_engine._send_heartbeats, _PATCHED, False)


def patch_heartbeat_wait() -> bool:
    """Make the heartbeat thread stop as soon as its flow run ends. Idempotent.

    Returns whether the patch is in place; warns (once per process) when it cannot be.
    """
    from prefect import flow_engine

    if is_patched():
        return True
    reason = why_not_patchable()
    if reason is not None:
        warnings.warn(
            f"prefect_sklearn_dask: flow runs keep Prefect's heartbeat wait at exit "
            f"(up to 1 s per synchronous flow run): {reason}",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    source, first, filename = heartbeat_source()
    tree = ast.parse(source.replace(EXPECTED, REPLACEMENT))
    ast.increment_lineno(tree, first - 1)
    namespace: dict[str, object] = {}
    # Prefect's module globals: the function resolves the same names as the original.
    exec(compile(tree, filename, "exec"), vars(flow_engine), namespace)
    patched = namespace["_send_heartbeats"]
    setattr(patched, _PATCHED, True)
    flow_engine._send_heartbeats = patched
    return True


__all__ = ["patch_heartbeat_wait", "is_patched", "why_not_patchable"]
