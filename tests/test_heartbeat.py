"""The heartbeat patch: still Prefect's function with one edit, heartbeats still sent,
and the thread waits on its stop event (so the flow run ends when its work does)."""

from __future__ import annotations

import inspect
import itertools
import sys
import time

import httpx
import pytest
from prefect import flow
from prefect import flow_engine as engine
from prefect.runtime import flow_run

from prefect_sklearn_dask.bridge import heartbeat


def test_prefect_still_has_the_lines_the_patch_replaces():
    """Fails when a Prefect upgrade changes _send_heartbeats: re-read it, then update
    heartbeat.EXPECTED/REPLACEMENT and PREFECT_SERIES (or drop the patch if fixed)."""
    source, _, _ = heartbeat.heartbeat_source()
    assert heartbeat.EXPECTED in source, "prefect.flow_engine._send_heartbeats changed"
    assert heartbeat.why_not_patchable() is None
    assert heartbeat.EXPECTED.count("\n") == heartbeat.REPLACEMENT.count("\n")


def test_importing_the_bridge_patches_once():
    assert heartbeat.is_patched()
    patched = engine._send_heartbeats
    assert heartbeat.patch_heartbeat_wait() is True
    assert engine._send_heartbeats is patched


def test_other_prefect_versions_are_left_alone_with_a_warning(monkeypatch):
    import prefect

    monkeypatch.setattr(prefect, "__version__", "3.10.0")
    # the patched function without its mark: what an unpatched process has
    monkeypatch.setattr(engine, "_send_heartbeats", inspect.unwrap(engine._send_heartbeats))
    with pytest.warns(RuntimeWarning, match="written for Prefect 3.9.x, found 3.10.0"):
        assert heartbeat.patch_heartbeat_wait() is False
    assert not heartbeat.is_patched()


def _heartbeat_thread_call() -> str | None:
    """What the heartbeat thread of this process is calling now (None: a C function
    such as time.sleep, or no heartbeat thread)."""
    for frame in sys._current_frames().values():
        names = []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        if "heartbeat_loop" in names:
            index = names.index("heartbeat_loop")
            return names[index - 1] if index else None
    return None


def _heartbeat_thread_alive() -> bool:
    return any(
        frame.f_code.co_name == "heartbeat_loop"
        for top in sys._current_frames().values()
        for frame in _stack(top)
    )


def _stack(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


# (started, ended) of every heartbeat this process emitted, by the spy in the test below
EMITTED: list[tuple[float, float]] = []


def _wait_idle(deadline: float) -> str | None:
    """What the heartbeat thread calls once it is not emitting (or at the deadline)."""
    while (calling := _heartbeat_thread_call()) == "_emit_flow_run_heartbeat":
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return calling


@flow(name="heartbeat-probe")
def heartbeat_probe(heartbeats: int) -> tuple[str, str | None]:
    """Run until the thread has emitted ``heartbeats`` (not for a fixed time: under load
    an emission takes longer), then say what the idle thread is calling."""
    deadline = time.monotonic() + 30
    while len(EMITTED) < heartbeats and time.monotonic() < deadline:
        time.sleep(0.05)
    return str(flow_run.id), _wait_idle(deadline)


def _heartbeats(api: str, flow_run_id: str, expected: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(
            f"{api}/events/filter",
            json={
                "filter": {
                    "event": {"name": ["prefect.flow-run.heartbeat"]},
                    "any_resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
                }
            },
            timeout=10,
        )
        response.raise_for_status()
        found = len(response.json()["events"])
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_heartbeats_keep_their_cadence_and_the_thread_waits_on_its_stop_event(
    prefect_api, monkeypatch
):
    """Heartbeats go out one interval apart, measured between the end of one emission
    and the start of the next (the emissions themselves slow down under load)."""
    # Prefect's floor is 30 s; one second here so a short run shows the cadence.
    interval = 1
    monkeypatch.setattr(engine, "MINIMUM_HEARTBEAT_INTERVAL", interval)
    monkeypatch.setattr(engine.BaseFlowRunEngine, "heartbeat_seconds", property(lambda _: interval))
    emit = engine.BaseFlowRunEngine._emit_flow_run_heartbeat

    def timed_emit(self, *args, **kwargs):  # the real emission, timed
        started = time.monotonic()
        try:
            return emit(self, *args, **kwargs)
        finally:
            EMITTED.append((started, time.monotonic()))

    monkeypatch.setattr(engine.BaseFlowRunEngine, "_emit_flow_run_heartbeat", timed_emit)
    EMITTED.clear()
    flow_run_id, calling = heartbeat_probe(3)
    # Idle in Event.wait, which its stop event ends, not in time.sleep (a C call: None).
    assert calling == "wait"
    assert not _heartbeat_thread_alive()  # joined at exit
    assert len(EMITTED) >= 3, EMITTED
    pauses = [later[0] - earlier[1] for earlier, later in itertools.pairwise(EMITTED)]
    assert all(pause >= 0.9 * interval for pause in pauses), pauses  # waits the interval
    assert _heartbeats(prefect_api, flow_run_id, expected=len(EMITTED)) >= 3
