"""The server's SQLite configuration: a transaction that reads, then writes after another
connection committed, waits for the lock instead of failing with "database is locked".

Real SQLite files through Prefect's own configuration classes and sessions; the whole
server under a burst of flow runs is tests/test_sqlite_load.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.server.database.configurations import AioSqliteConfiguration
from prefect.server.database.dependencies import MODELS_DEPENDENCIES
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, temporary_settings

from prefect_sklearn_dask.server.sqlite_writes import (
    LockAtBeginSqliteConfiguration,
    lock_at_begin,
)


async def read_then_write_beside_a_commit(config: AioSqliteConfiguration) -> list[int]:
    """Transaction A reads; B writes and commits; then A writes (Prefect's
    ``POST /flow_runs/`` shape beside any other write). Returns the rows written."""
    engine = await config.engine()
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS runs (v INTEGER)")
    first_read = asyncio.Event()

    async def reader_then_writer() -> None:
        async with await config.session(engine) as session, config.begin_transaction(session):
            await session.execute(sa.text("SELECT count(*) FROM runs"))
            first_read.set()
            await asyncio.sleep(0.5)  # the other transaction commits meanwhile
            await session.execute(sa.text("INSERT INTO runs VALUES (1)"))

    async def writer() -> None:
        await first_read.wait()
        async with await config.session(engine) as session, config.begin_transaction(session):
            await session.execute(sa.text("INSERT INTO runs VALUES (2)"))

    try:
        await asyncio.gather(reader_then_writer(), writer())
        async with engine.connect() as connection:
            rows = await connection.exec_driver_sql("SELECT v FROM runs ORDER BY v")
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


def test_stock_sqlite_transactions_refuse_the_write(tmp_path: Path):
    """What the project's configuration is for: Prefect's default fails at once."""
    config = AioSqliteConfiguration(f"sqlite+aiosqlite:///{tmp_path}/stock.db")
    with pytest.raises(sa.exc.OperationalError, match="database is locked"):
        asyncio.run(read_then_write_beside_a_commit(config))


def test_lock_at_begin_queues_the_write_and_keeps_both(tmp_path: Path):
    config = LockAtBeginSqliteConfiguration(f"sqlite+aiosqlite:///{tmp_path}/lock.db")
    assert asyncio.run(read_then_write_beside_a_commit(config)) == [1, 2]


def test_the_configuration_is_served_for_sqlite_only(tmp_path: Path):
    before = MODELS_DEPENDENCIES["database_config"]
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path}/prefect.db"
    with (
        temporary_settings({PREFECT_API_DATABASE_CONNECTION_URL: sqlite_url}),
        lock_at_begin() as applied,
    ):
        served = MODELS_DEPENDENCIES["database_config"]
        assert applied
        assert isinstance(served, LockAtBeginSqliteConfiguration)
        assert served.connection_url == sqlite_url
    assert MODELS_DEPENDENCIES["database_config"] is before
    postgres_url = "postgresql+asyncpg://prefect:secret@127.0.0.1:5432/prefect"
    with (
        temporary_settings({PREFECT_API_DATABASE_CONNECTION_URL: postgres_url}),
        lock_at_begin() as applied,
    ):
        assert not applied
        assert MODELS_DEPENDENCIES["database_config"] is before
