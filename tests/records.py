"""Read task runs back from the server, the way the UI would see them.

The server records task runs from state events, in batches (``server.process.THROUGHPUT_ENV``:
up to 2 s later), so a test that reads right after a flow returns polls until the runs it
expects are there and final.
"""

from __future__ import annotations

import asyncio
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from prefect.client.schemas.objects import TaskRun


def read_task_runs(flow_run_id: str) -> list[TaskRun]:
    """The flow run's task runs as the server holds them now (one read)."""

    async def read() -> list[TaskRun]:
        async with get_client() as client:
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id={"any_": [str(flow_run_id)]})
            )

    return asyncio.run(read())


def wait_for_task_runs(flow_run_id: str, expected: int, timeout: float = 30.0) -> list[TaskRun]:
    """The flow run's task runs once ``expected`` of them are final (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = read_task_runs(flow_run_id)
        final = [r for r in runs if r.state and r.state.is_final()]
        if len(final) >= expected or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)
