"""Telling "the database is away" from other failures, so callers answer 503, not 500.

PostgreSQL restarting, a connection limit reached, a backend terminated, a pool with no free
connection in time: each surfaces as one of a few exception classes, from SQLAlchemy or from
psycopg directly (the job queue's pool). They are the caller's cue to retry later; an API answers
503 with Retry-After, and a worker lets the job be retried.
"""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc

from ehiconnect.errors import ServiceUnavailable

# Seconds a client is told to wait: about one reconnect attempt of the pools.
RETRY_AFTER_SECONDS = 5

DATABASE_AWAY: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # the pool had no free connection within its timeout
    psycopg.OperationalError,  # includes psycopg_pool.PoolTimeout
    psycopg.InterfaceError,
)


def is_database_away(error: BaseException) -> bool:
    """Whether `error`, or what it explicitly wraps (`raise … from`), says the database could
    not be reached or used. Only causes count: an unrelated bug raised while handling a database
    error must still be a 500."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DATABASE_AWAY):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def database_unavailable() -> ServiceUnavailable:
    """The API error for a request that could not reach the database."""
    return ServiceUnavailable(
        "the database is not reachable right now; retry after the time in Retry-After",
        code="database_unavailable",
        retry_after=RETRY_AFTER_SECONDS,
    )
