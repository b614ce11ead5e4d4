"""Forget finished consent flows (a periodic job).

A flow row holds what a sign-in in progress needs: the sealed PKCE verifier, the app's
`external_id` and `external_state`, and, for the widget's fallback, the result until it is read.
None of it is useful once the flow has expired, so rows are deleted `flow_retention_hours` after
their expiry (a replayed callback then reads "unknown state" instead of "state reused").
"""

from __future__ import annotations

import datetime as dt
import logging

import procrastinate
from sqlalchemy import delete

from ehiconnect.consent.models import ConsentFlow
from ehiconnect.consent.ports import ConsentPorts
from ehiconnect.queue.context import ports_of

log = logging.getLogger(__name__)


async def purge_old_flows(ports: ConsentPorts) -> int:
    """Delete flows that expired more than `consent.flow_retention_hours` ago; how many."""
    cutoff = ports.clock.now() - dt.timedelta(hours=ports.settings.flow_retention_hours)
    async with ports.database.transaction() as session:
        result = await session.execute(delete(ConsentFlow).where(ConsentFlow.expires_at < cutoff))
    removed = int(getattr(result, "rowcount", 0) or 0)
    if removed:
        log.info("old consent flows deleted", extra={"count": removed})
    return removed


async def purge_flows(context: procrastinate.JobContext, timestamp: int) -> int:
    return await purge_old_flows(ports_of(context, ConsentPorts))


def make_blueprint() -> procrastinate.Blueprint:
    blueprint = procrastinate.Blueprint()
    blueprint.task(name="purge_flows", queueing_lock="purge_flows", pass_context=True)(purge_flows)
    return blueprint
