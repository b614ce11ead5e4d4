"""Thin jobs: run an export; reconcile tasks with their jobs; purge exports past retention."""

from __future__ import annotations

import procrastinate

from ehiconnect.exports.ports import ExportPorts
from ehiconnect.exports.reconcile import reconcile_exports
from ehiconnect.exports.retention import purge_expired_exports
from ehiconnect.exports.runner import run_export as run
from ehiconnect.queue.context import ports_of


async def run_export(
    context: procrastinate.JobContext, task_id: str, traceparent: str | None = None
) -> str:
    # `traceparent`: the API request that asked for the export (set by jobs.enqueue when traced).
    return await run(ports_of(context, ExportPorts), task_id, traceparent=traceparent)


async def reconcile(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    report = await reconcile_exports(ports_of(context, ExportPorts))
    return report.as_json()


async def purge_expired(context: procrastinate.JobContext, timestamp: int) -> int:
    return await purge_expired_exports(ports_of(context, ExportPorts))


def make_blueprint() -> procrastinate.Blueprint:
    blueprint = procrastinate.Blueprint()
    blueprint.task(
        name="run_export",
        pass_context=True,
        retry=procrastinate.RetryStrategy(max_attempts=3, wait=5),
    )(run_export)
    blueprint.task(name="reconcile", queueing_lock="reconcile_exports", pass_context=True)(
        reconcile
    )
    blueprint.task(name="purge_expired", queueing_lock="purge_expired", pass_context=True)(
        purge_expired
    )
    return blueprint
