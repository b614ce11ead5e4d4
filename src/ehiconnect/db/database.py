"""The async engine and transactions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ehiconnect.db.urls import to_sqlalchemy_url


class Database:
    """Owns the connection pool. Create with a URL, `await close()` when done.

    The pool opens at most `pool_size + max_overflow` connections, lazily; a caller finding none
    free waits up to `pool_timeout_seconds`. `connect_args` are libpq parameters for every
    connection (`application_name`, `connect_timeout`, `options`; see `db.pools`).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 0,
        pool_timeout_seconds: float = 30.0,
        connect_args: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        # Looked up when called: tracing's SQLAlchemy instrumentation wraps the module's function.
        self.engine: AsyncEngine = sa_asyncio.create_async_engine(
            to_sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_seconds,
            pool_pre_ping=True,
            connect_args=connect_args or {},
            # Statement parameters can hold tokens and patient data: keep them out of errors, logs.
            hide_parameters=True,
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


NO_FLUSH_WAIT = "SET LOCAL synchronous_commit TO OFF"
"""Lets a transaction commit without waiting for its WAL to reach the disk: for writes that are
redone when lost (an export's staging and progress, an ingest's batches and checkpoints), never
for what a caller was told is saved. A crash loses only the latest such commits, in order."""


async def driver_of(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """The session's psycopg connection, in its transaction: for statements sent straight to the
    driver (a pipeline, COPY, parameters in binary form), past SQLAlchemy's statement machinery,
    which costs more than a small statement itself."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver


@contextlib.asynccontextmanager
async def pipelined_without_flush_wait(
    session: AsyncSession,
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The session's driver connection in pipeline mode, its transaction committing without the
    WAL flush wait (`NO_FLUSH_WAIT`). The transaction's BEGIN, that setting and the statements
    executed in the block travel together: one round trip, taken when a result is first read
    (or when the block ends), instead of one per statement."""
    driver = await driver_of(session)
    async with driver.pipeline():
        await driver.execute(NO_FLUSH_WAIT)
        yield driver
