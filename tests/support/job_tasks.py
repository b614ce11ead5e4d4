"""Tasks used by the queue tests, loaded through the `jobs.extra_task_modules` setting."""

from __future__ import annotations

import asyncio

import procrastinate

from ehiconnect import audit
from ehiconnect.db.models import Organization
from ehiconnect.queue.context import ports_of
from ehiconnect.runtime import Runtime


async def note_org(context: procrastinate.JobContext, org_id: str) -> None:
    """Fails unless the organization row the job was enqueued with is visible."""
    runtime = ports_of(context, Runtime)
    async with runtime.database.transaction() as session:
        if await session.get(Organization, org_id) is None:
            raise LookupError(f"organization {org_id} is not visible to the job")
        await audit.record(
            session, runtime.clock, actor="job", action="test.saw_org", org_id=org_id
        )


async def slow_marker(context: procrastinate.JobContext, marker: str, seconds: float) -> None:
    """Records its start, works for `seconds`, then records its end."""
    runtime = ports_of(context, Runtime)
    async with runtime.database.transaction() as session:
        await audit.record(
            session, runtime.clock, actor="job", action="test.started", task_id=marker
        )
    await asyncio.sleep(seconds)
    async with runtime.database.transaction() as session:
        await audit.record(
            session, runtime.clock, actor="job", action="test.finished", task_id=marker
        )


def make_blueprint() -> procrastinate.Blueprint:
    blueprint = procrastinate.Blueprint()
    blueprint.task(name="note_org", pass_context=True)(note_org)
    blueprint.task(name="slow_marker", pass_context=True)(slow_marker)
    return blueprint
