"""Transactional enqueue: the job row is written on the caller's own database connection.

A job enqueued with `enqueue(session, ...)` commits or rolls back together with whatever else the
session wrote, so a worker never sees a job whose rows do not exist, and a committed row never
misses its job.

A task that declares a `traceparent` parameter is handed the W3C trace context of the span that
enqueued it, when tracing is on (the export job links its span to the API request that asked).
"""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import tracing

TRACEPARENT = "traceparent"


async def enqueue(
    session: AsyncSession,
    jobs: procrastinate.App,
    task_name: str,
    *,
    lock: str | None = None,
    queueing_lock: str | None = None,
    schedule_at: dt.datetime | None = None,
    **kwargs: Any,
) -> int:
    """Defer `task_name` (e.g. "webhooks:deliver") inside the session's transaction; the job id."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    task = jobs.tasks.get(task_name)
    if task is None:
        known = ", ".join(sorted(jobs.tasks)) or "none"
        raise LookupError(f"no task named {task_name!r} is registered (known: {known})")
    if tracing.enabled() and TRACEPARENT not in kwargs and _takes_traceparent(task):
        parent = tracing.current_traceparent()
        if parent is not None:
            kwargs[TRACEPARENT] = parent
    deferrer = task.configure(
        connection=raw.driver_connection,
        lock=lock,
        queueing_lock=queueing_lock,
        schedule_at=schedule_at,
    )
    job_id: int = await deferrer.defer_async(**kwargs)
    return job_id


def _takes_traceparent(task: procrastinate.tasks.Task[Any, Any, Any]) -> bool:
    return TRACEPARENT in inspect.signature(task.func).parameters
