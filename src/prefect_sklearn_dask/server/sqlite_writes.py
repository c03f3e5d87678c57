"""SQLite transactions that take the write lock at BEGIN, for the project's Prefect server.

Prefect's server opens its transactions with SQLite's default ``BEGIN DEFERRED`` and
asks for ``BEGIN IMMEDIATE`` only at the call sites where it was seen to matter (state
changes, deployments). A deferred transaction that reads before it writes upgrades a
read snapshot to a write; in WAL mode that upgrade fails at once with
SQLITE_BUSY_SNAPSHOT ("database is locked") when another connection committed in
between, and SQLite's busy timeout does not wait for it. ``POST /flow_runs/`` is one:
it reads the flow's labels, then inserts the run. The API answers 503 and Prefect's
client retries 5 times with backoff (~62 s); 32 flow runs started at once on 2 cores
had 63 creations refused (server log with ``PREFECT_API_LOG_RETRYABLE_ERRORS``), and on
a loaded CI machine one run lost all six tries and failed.

With every transaction started by ``BEGIN IMMEDIATE`` the upgrade cannot happen:
writers queue on the busy timeout instead of failing (0 refusals in the same burst;
tests/test_sqlite_load.py). WAL readers are not blocked, statements outside a
transaction are unchanged, and PostgreSQL is left stock. The configuration goes in
through Prefect's own hook for one (``temporary_database_config``), not a patch.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator

from prefect.server.database.configurations import AioSqliteConfiguration
from prefect.server.database.dependencies import temporary_database_config
from prefect.server.utilities.database import get_dialect
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction


class LockAtBeginSqliteConfiguration(AioSqliteConfiguration):
    """Prefect's SQLite configuration, with ``BEGIN IMMEDIATE`` for every transaction."""

    @contextlib.asynccontextmanager
    async def begin_transaction(
        self, session: AsyncSession, with_for_update: bool = False
    ) -> AsyncGenerator[AsyncSessionTransaction, None]:
        async with super().begin_transaction(session, with_for_update=True) as transaction:
            yield transaction


@contextlib.contextmanager
def lock_at_begin() -> Iterator[bool]:
    """Serve with :class:`LockAtBeginSqliteConfiguration` when the database is SQLite;
    yields whether it applies."""
    url = PREFECT_API_DATABASE_CONNECTION_URL.value()
    if get_dialect(url).name != "sqlite":
        yield False
        return
    with temporary_database_config(LockAtBeginSqliteConfiguration(connection_url=url)):
        yield True
