"""Keeping a flow's result for the widget's result handle, and handing it out once.

The callback records the result in the flow row (`record_result`, first result wins) before it
renders the page that posts the same result to the widget; `redeem_result` is what
`POST /v1/bridge/connect/result` runs for one poll. The decisions live in
`ehiconnect.consent.result`; this module only reads and writes the row, under a row lock so two
polls racing for one result cannot both get it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.consent.models import ConsentFlow
from ehiconnect.consent.ports import ConsentPorts
from ehiconnect.consent.result import (
    HandleState,
    Pending,
    Ready,
    checked_result,
    handle_hash,
    read_outcome,
    unknown_handle,
)
from ehiconnect.db.models import Organization
from ehiconnect.errors import Conflict, Forbidden
from ehiconnect.ids import ApiMode
from ehiconnect.orgs.origins import origin_allowed


async def ensure_handle_unused(session: AsyncSession, result_handle_hash: str) -> None:
    """Refuse a challenge another flow has (the unique index would refuse it less politely)."""
    taken = await session.scalar(
        select(ConsentFlow.state_hash).where(ConsentFlow.result_handle_hash == result_handle_hash)
    )
    if taken is not None:
        raise Conflict(
            "this result_challenge was already used for another sign-in; make a new result "
            "handle for each one",
            code="result_challenge_reused",
        )


async def record_result(
    session: AsyncSession, state_hash: str, result: dict[str, object], now: dt.datetime
) -> None:
    """Keep `result` for the flow's handle; a flow without a handle, or with a result, is left
    as it is (a replayed callback cannot overwrite what the widget is about to read)."""
    await session.execute(
        update(ConsentFlow)
        .where(
            ConsentFlow.state_hash == state_hash,
            ConsentFlow.result_handle_hash.is_not(None),
            ConsentFlow.finished_at.is_(None),
        )
        .values(result=checked_result(result), finished_at=now)
    )


async def redeem_result(
    ports: ConsentPorts,
    org: Organization,
    mode: ApiMode,
    *,
    result_handle: str,
    origin: str | None,
) -> Pending | Ready:
    """One poll: the result (marking the handle used), `Pending`, or an ApiError saying why not."""
    if not origin or not origin_allowed(origin, org, mode):
        raise Forbidden(
            "a sign-in's result is handed only to the page that started it, from an origin "
            "registered for this organization (`ehiconnect orgs create --origin`); this "
            f"request came from {origin or 'no origin at all'}",
            code="origin_not_allowed",
        )
    wanted = handle_hash(result_handle)
    async with ports.database.transaction() as session:
        flow = await session.scalar(
            select(ConsentFlow).where(ConsentFlow.result_handle_hash == wanted).with_for_update()
        )
        if flow is None or flow.org_id != org.org_id or flow.api_mode != mode:
            raise unknown_handle()
        now = ports.clock.now()
        outcome = read_outcome(
            HandleState(
                widget_origin=flow.widget_origin,
                expires_at=flow.expires_at,
                result=flow.result if flow.finished_at is not None else None,
                finished_at=flow.finished_at,
                read_at=flow.result_read_at,
            ),
            origin=origin,
            now=now,
        )
        if isinstance(outcome, Ready):
            # Used up, and nothing is kept that a later read could want.
            flow.result_read_at = now
            flow.result = None
        return outcome
