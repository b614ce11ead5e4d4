"""Keep connections usable: refresh access tokens before they expire (a periodic job).

Each run looks ahead by the refresh margin plus the time until the next scheduled run, so a token
never expires between two runs unnoticed. The actual refresh is `fresh_access_token`, under the
per-connection lock, so a run that overlaps an export's own refresh does no harm.

Outcomes per connection: refreshed; revoked (the health system refused the refresh token:
`fresh_access_token` has already marked the connection revoked and emitted
`patient.authorization_revoked`); deferred (a temporary failure, tried again next run); failed
(misconfiguration or an unreadable secret, logged for the operator). Connections that keep failing
go to the back of the queue, so a few broken ones never starve the rest of a bounded batch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import asdict, dataclass

import procrastinate
from croniter import croniter  # type: ignore[import-untyped]  # procrastinate's own dependency
from sqlalchemy import select, update

from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.ports import ConnectionPorts
from ehiconnect.connections.tokens import fresh_access_token
from ehiconnect.db.database import Database
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError, ReconsentRequired, TemporaryError
from ehiconnect.queue.context import ports_of
from ehiconnect.settings import ConsentSettings
from ehiconnect.vault import VaultError
from ehiconnect.vocabulary import ConnectionStatus

log = logging.getLogger(__name__)

DEFAULT_BATCH_LIMIT = 200
CONCURRENT_REFRESHES = 4


@dataclass
class RefreshReport:
    selected: int = 0
    refreshed: int = 0
    revoked: int = 0
    deferred: int = 0
    failed: int = 0

    def as_json(self) -> dict[str, int]:
        return asdict(self)


def refresh_lookahead(consent: ConsentSettings, now: dt.datetime) -> dt.timedelta:
    """The refresh margin plus the time until the next run of `consent.refresh_check_cron`."""
    following = croniter(consent.refresh_check_cron, now).get_next(dt.datetime)
    assert isinstance(following, dt.datetime)
    return dt.timedelta(seconds=consent.token_refresh_margin_seconds) + (following - now)


async def refresh_expiring_connections(
    ports: ConnectionPorts,
    *,
    now: dt.datetime | None = None,
    limit: int = DEFAULT_BATCH_LIMIT,
    lookahead: dt.timedelta | None = None,
) -> RefreshReport:
    """Refresh up to `limit` connections whose access token expires before `now + lookahead`.

    `lookahead` defaults to `refresh_lookahead(ports.settings, now)`.
    """
    now = now or ports.clock.now()
    horizon = now + (lookahead or refresh_lookahead(ports.settings, now))
    async with ports.database.transaction() as session:
        due = list(
            await session.scalars(
                select(ConnectionTokens.org_connection_id)
                .join(
                    OrgConnection,
                    OrgConnection.org_connection_id == ConnectionTokens.org_connection_id,
                )
                .where(
                    OrgConnection.status != ConnectionStatus.REVOKED,
                    ConnectionTokens.refresh_token_ct.is_not(None),
                    ConnectionTokens.access_expires_at.is_not(None),
                    ConnectionTokens.access_expires_at <= horizon,
                )
                .order_by(
                    ConnectionTokens.refresh_failures,
                    ConnectionTokens.access_expires_at,
                    ConnectionTokens.org_connection_id,
                )
                .limit(limit)
            )
        )
    report = RefreshReport(selected=len(due))
    gate = asyncio.Semaphore(CONCURRENT_REFRESHES)

    async def refresh_one(connection_id: str) -> None:
        async with gate:
            await _refresh(ports, connection_id, horizon, report)

    await asyncio.gather(*(refresh_one(connection_id) for connection_id in due))
    if due:
        log.info("token refresh run", extra=report.as_json())
    return report


async def _refresh(
    ports: ConnectionPorts, connection_id: str, horizon: dt.datetime, report: RefreshReport
) -> None:
    # `fresh_access_token` refreshes what expires within `margin` of its clock: express the
    # horizon that way, so a connection another worker refreshed meanwhile is left alone.
    margin = horizon - ports.clock.now()
    try:
        await fresh_access_token(
            ports.database,
            ports.cipher,
            ports.clock,
            ports.http,
            ports.jobs,
            connection_id,
            margin=margin,
            signer=ports.client_signer,
        )
    except ReconsentRequired:
        report.revoked += 1
        log.info(
            "a health system refused a refresh; connection revoked",
            extra={"org_connection_id": connection_id},
        )
    except TemporaryError as exc:
        report.deferred += 1
        log.warning(
            "token refresh failed for now; retried next run",
            extra={"org_connection_id": connection_id, "reason": str(exc)},
        )
        await _count_failure(ports.database, connection_id)
    except (FatalError, VaultError) as exc:
        report.failed += 1
        log.error(
            "token refresh cannot work until the operator acts",
            extra={"org_connection_id": connection_id, "reason": str(exc)},
        )
        await _count_failure(ports.database, connection_id)
    else:
        report.refreshed += 1


async def _count_failure(database: Database, connection_id: str) -> None:
    async with database.transaction() as session:
        await session.execute(
            update(ConnectionTokens)
            .where(ConnectionTokens.org_connection_id == connection_id)
            .values(refresh_failures=ConnectionTokens.refresh_failures + 1)
        )


async def refresh_expiring(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    report = await refresh_expiring_connections(ports_of(context, ConnectionPorts))
    return report.as_json()


def make_blueprint() -> procrastinate.Blueprint:
    blueprint = procrastinate.Blueprint()
    blueprint.task(name="refresh_expiring", queueing_lock="refresh_expiring", pass_context=True)(
        refresh_expiring
    )
    return blueprint
