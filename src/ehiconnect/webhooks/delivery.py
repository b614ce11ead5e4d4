"""Sending due deliveries: claim, sign, POST through the SSRF guard, record the outcome.

The schedule lives in the database. A pass claims due deliveries with FOR UPDATE SKIP LOCKED and
pushes their `next_attempt_at` one lease ahead, commits, sends without holding any lock, then
records each attempt and the delivery's next state. A worker killed mid-pass leaves its claims to
expire: the deliveries become due again and are sent again (at-least-once; receivers dedupe on
`webhook-id`). Time comes from the injected Clock, so tests step the schedule instead of sleeping.

`run_pass`/`run_until_idle` do whole passes (tests, `senders.deliver_due`); the worker's
Dispatcher calls `claim` and `deliver` separately, so it can claim again while earlier passes are
still sending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx
import orjson
from sqlalchemy import select, text, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import signing, tracing
from ehiconnect.clock import Clock
from ehiconnect.db.database import Database
from ehiconnect.http.ssrf import CappedResponse, Resolver, TargetRefused, system_resolver
from ehiconnect.settings import WebhookSettings
from ehiconnect.vault import TokenCipher
from ehiconnect.webhooks import events, telemetry
from ehiconnect.webhooks.claims import AttemptResult, ClaimedDelivery, claim_due, next_due_at
from ehiconnect.webhooks.connections import Poster, ReceiverConnections
from ehiconnect.webhooks.endpoints import disable_endpoint, owner_scope
from ehiconnect.webhooks.models import (
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_SUCCEEDED,
    WebhookEndpoint,
)
from ehiconnect.webhooks.schedule import (
    AttemptOutcome,
    UniformRandom,
    next_attempt_at,
    should_disable_endpoint,
)
from ehiconnect.webhooks.wire import WireConnections

log = logging.getLogger(__name__)

USER_AGENT = "ehiconnect-webhooks/1"
# Waits between tries to record a pass while the database refuses (restart, connection limit).
RECORD_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
RECORD_MARGIN_SECONDS = 2.0
# An idle kept-alive connection is closed after this long: below the 5 s after which uvicorn and
# Node close an idle connection themselves, so a send rarely finds its connection closed.
KEEPALIVE_SECONDS = 4.0


@dataclasses.dataclass
class PassReport:
    """What one pass did; `claimed` 0 means nothing was due."""

    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    disabled_endpoints: list[str] = dataclasses.field(default_factory=list)
    # (endpoint_id, org_id, why: gone | failing) of the endpoints this pass disabled
    disabled: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)


class Deliverer:
    """Sends due deliveries: `async with Deliverer(...) as d: await d.run_pass()`."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        settings: WebhookSettings,
        cipher: TokenCipher,
        *,
        resolver: Resolver = system_resolver,
        rng: UniformRandom | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._settings = settings
        self._cipher = cipher
        self._resolver = resolver
        self._rng: UniformRandom = rng or random.SystemRandom()
        self._transport = transport
        # Opened by `async with`: connections then stay open from pass to pass. Without it,
        # each pass opens its own and closes them when it ends.
        self._connections: Poster | None = None

    async def __aenter__(self) -> Deliverer:
        self._connections = self._open_connections()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connections, self._connections = self._connections, None
        if connections is not None:
            await connections.aclose()

    def _open_connections(self) -> Poster:
        # The h11 client (wire.py) costs a fraction of httpx's CPU per send; httpx stays for
        # an injected transport, and when tracing is on: its instrumentation gives each
        # attempt its HTTP client span.
        settings = self._settings
        if self._transport is not None or tracing.enabled():
            return ReceiverConnections(
                timeout_seconds=settings.timeout_seconds,
                resolver=self._resolver,
                headers={"user-agent": USER_AGENT, "content-type": "application/json"},
                idle_per_receiver=settings.batch_size * settings.max_concurrent_passes,
                keepalive_seconds=KEEPALIVE_SECONDS,
                transport=self._transport,
            )
        return WireConnections(
            timeout_seconds=settings.timeout_seconds,
            resolver=self._resolver,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
            idle_per_receiver=settings.batch_size * settings.max_concurrent_passes,
            keepalive_seconds=KEEPALIVE_SECONDS,
        )

    async def run_pass(self, *, event_id: str | None = None) -> PassReport:
        """Claim up to `batch_size` due deliveries, send them concurrently, record the results."""
        return await self.deliver(await self.claim(event_id=event_id))

    async def claim(self, *, event_id: str | None = None) -> list[ClaimedDelivery]:
        """Claim up to `batch_size` deliveries due now (of one event, if given), oldest first."""
        async with self._database.transaction() as session:
            return await claim_due(
                session,
                self._cipher,
                now=self._clock.now(),
                lease=self._settings.claim_lease,
                limit=self._settings.batch_size,
                event_id=event_id,
            )

    async def deliver(self, claimed: Sequence[ClaimedDelivery]) -> PassReport:
        """Send claimed deliveries concurrently and record each attempt and next state."""
        report = PassReport(claimed=len(claimed))
        if not claimed:
            return report
        claimed_at = time.monotonic()
        if self._connections is not None:
            connections = self._connections
            results = await asyncio.gather(*(self._attempt(d, connections) for d in claimed))
        else:
            connections = self._open_connections()
            try:
                results = await asyncio.gather(*(self._attempt(d, connections) for d in claimed))
            finally:
                await connections.aclose()
        # Record while the claims still hold: after the lease the deliveries are due again.
        record_until = claimed_at + self._settings.claim_lease_seconds - RECORD_MARGIN_SECONDS
        await self._record(results, report, until=record_until)
        return report

    async def next_due(self) -> dt.datetime | None:
        """When the next pending delivery falls due (a claimed one at its lease end), or None."""
        async with self._database.transaction() as session:
            return await next_due_at(session)

    async def run_until_idle(self, *, max_passes: int = 1000) -> PassReport:
        """Passes until nothing is due at the clock's current time (tests, `deliver_due`)."""
        total = PassReport()
        for _ in range(max_passes):
            report = await self.run_pass()
            total.claimed += report.claimed
            total.succeeded += report.succeeded
            total.failed += report.failed
            total.disabled_endpoints += report.disabled_endpoints
            if report.claimed < self._settings.batch_size:
                break  # a short batch: nothing else was due when it was claimed
        return total

    async def _attempt(self, delivery: ClaimedDelivery, connections: Poster) -> AttemptResult:
        """One POST, traced as a `webhook attempt` span (ids, outcome, status; never the URL's
        path or query, nor the body), whose child is the HTTP request's span."""
        attributes: dict[str, tracing.AttributeValue] = {
            "ehiconnect.event_id": delivery.event_id,
            "ehiconnect.event_type": delivery.event_type,
            "ehiconnect.endpoint_id": delivery.endpoint_id,
            "ehiconnect.attempt_number": delivery.attempt_number,
            "ehiconnect.api_mode": delivery.api_mode,
        }
        with tracing.span("webhook attempt", attributes) as span:
            result = await self._send(delivery, connections)
            span.set_attribute("ehiconnect.webhook.outcome", result.outcome.value)
            span.set_attribute("ehiconnect.webhook.latency_ms", result.latency_ms)
            if result.status_code is not None:
                span.set_attribute("http.response.status_code", result.status_code)
            if result.outcome is not AttemptOutcome.SUCCEEDED:
                span.fail(result.error or f"HTTP {result.status_code}")
            return result

    async def _send(self, delivery: ClaimedDelivery, connections: Poster) -> AttemptResult:
        now = self._clock.now()
        envelope = events.build_envelope(
            event_id=delivery.event_id,
            type=delivery.event_type,
            api_mode="live" if delivery.api_mode == "live" else "test",
            data=delivery.data,
            date=now,
        )
        body = events.envelope_body(envelope)
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            headers = signing.signature_headers(
                delivery.event_id, int(now.timestamp()), body, delivery.secrets
            )
            response = await self._post(connections, delivery, body, headers)
            status_code = response.status_code
            cut = response.body[: self._settings.response_excerpt_bytes]
            excerpt = cut.decode("utf-8", errors="replace")
        except TargetRefused as exc:
            error = f"refused by the SSRF guard: {exc}"
        except TimeoutError:
            error = f"no complete response within {self._settings.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc or 'connection failed'}"
        except ValueError as exc:  # no active secret
            error = str(exc)
        latency_ms = round((time.perf_counter() - started) * 1000)
        return AttemptResult(delivery, now, status_code, latency_ms, excerpt, error)

    async def _post(
        self,
        connections: Poster,
        delivery: ClaimedDelivery,
        body: bytes,
        headers: dict[str, str],
    ) -> CappedResponse:
        return await connections.post(
            delivery.url,
            body,
            headers,
            allow_private=self._allows_private(delivery.api_mode),
            max_bytes=max(self._settings.max_response_bytes, 1),
        )

    def _allows_private(self, api_mode: str) -> bool:
        return api_mode == "test" or self._settings.allow_private_targets

    async def _record(
        self, results: Sequence[AttemptResult], report: PassReport, *, until: float
    ) -> None:
        """Write the attempts and next states, retrying while the database refuses, until
        `until` (monotonic): a pass that cannot record would be sent again unlogged."""
        now = self._clock.now()
        updates = [self._next_state(result, now, report) for result in results]
        # Every attempt and next state as one JSON document, one statement (#17).
        rows = orjson.dumps(
            [_record_row(r, u) for r, u in zip(results, updates, strict=True)]
        ).decode()
        for wait in (*RECORD_RETRY_SECONDS, None):
            recorded = PassReport()  # what this try disabled, kept only if it commits
            try:
                async with self._database.transaction() as session:
                    await session.execute(_RECORD, {"rows": rows})
                    await self._update_endpoints(session, results, now, recorded)
                report.disabled_endpoints += recorded.disabled_endpoints
                report.disabled += recorded.disabled
                telemetry.pass_recorded(results, updates, recorded.disabled)
                return
            except (OperationalError, InterfaceError) as exc:
                if wait is None or time.monotonic() + wait > until:
                    raise
                log.warning(
                    "could not record webhook attempts yet; retrying",
                    extra={"deliveries": len(results), "error": type(exc.orig).__name__},
                )
                await asyncio.sleep(wait)

    def _next_state(
        self, result: AttemptResult, now: dt.datetime, report: PassReport
    ) -> dict[str, Any]:
        delivery = result.delivery
        state: dict[str, Any] = {
            "b_id": delivery.delivery_id,
            "b_token": delivery.claim_token,
            "b_attempts": delivery.attempt_number,
            "b_status": DELIVERY_PENDING,
            "b_next": None,
            "b_completed": None,
        }
        if result.outcome is AttemptOutcome.SUCCEEDED:
            report.succeeded += 1
            state.update(b_status=DELIVERY_SUCCEEDED, b_completed=now)
            return state
        report.failed += 1
        following = None
        if result.outcome is AttemptOutcome.FAILED:
            # Counted from the attempt itself, as documented, not from when its pass is recorded
            # (which waits for the slowest receiver of the pass).
            following = next_attempt_at(
                delivery.attempt_number,
                result.attempted_at,
                self._rng,
                schedule=self._settings.retry_schedule_seconds,
                jitter_fraction=self._settings.jitter_fraction,
            )
        if following is None:
            state.update(b_status=DELIVERY_FAILED, b_completed=now)
        else:
            state.update(b_next=following)
        return state

    async def _update_endpoints(
        self,
        session: AsyncSession,
        results: Sequence[AttemptResult],
        now: dt.datetime,
        report: PassReport,
    ) -> None:
        by_endpoint: dict[str, list[AttemptResult]] = {}
        for result in results:
            by_endpoint.setdefault(result.delivery.endpoint_id, []).append(result)
        # Sorted, so concurrent passes lock endpoint rows in one order and cannot deadlock.
        for endpoint_id in sorted(by_endpoint):
            outcomes = {r.outcome for r in by_endpoint[endpoint_id]}
            if AttemptOutcome.GONE in outcomes:
                reason = "the receiver answered 410 Gone"
                await self._disable(session, endpoint_id, reason, report, why="gone")
            elif AttemptOutcome.SUCCEEDED in outcomes:
                await session.execute(
                    update(WebhookEndpoint)
                    .where(
                        WebhookEndpoint.endpoint_id == endpoint_id,
                        WebhookEndpoint.failing_since.is_not(None),
                    )
                    .values(failing_since=None)
                )
            else:
                first_failure = min(r.attempted_at for r in by_endpoint[endpoint_id])
                await self._note_failure(session, endpoint_id, first_failure, now, report)

    async def _note_failure(
        self,
        session: AsyncSession,
        endpoint_id: str,
        first_failure: dt.datetime,
        now: dt.datetime,
        report: PassReport,
    ) -> None:
        endpoint = await session.scalar(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.endpoint_id == endpoint_id)
            .with_for_update()
        )
        if endpoint is None or endpoint.status != "enabled":
            return
        if endpoint.failing_since is None:
            endpoint.failing_since = first_failure
        disable_after = self._settings.disable_after
        if should_disable_endpoint(endpoint.failing_since, now, disable_after=disable_after):
            reason = (
                f"every delivery failed since {endpoint.failing_since.isoformat()} "
                f"({self._settings.disable_after_days:g} days); fix the receiver, then enable it"
            )
            await self._disable(session, endpoint_id, reason, report, why="failing")

    async def _disable(
        self,
        session: AsyncSession,
        endpoint_id: str,
        reason: str,
        report: PassReport,
        *,
        why: str,
    ) -> None:
        scope = await owner_scope(session, endpoint_id)  # the sender acts for the owner
        view = await disable_endpoint(
            session, self._clock, scope, endpoint_id, reason=reason, actor="webhooks"
        )
        report.disabled_endpoints.append(endpoint_id)
        report.disabled.append((endpoint_id, view.org_id, why))
        log.warning(
            "webhook endpoint disabled",
            extra={"endpoint_id": endpoint_id, "org_id": view.org_id, "reason": reason},
        )


# Every attempt of a pass inserted, and every delivery's next state set (each only under the token
# it was claimed with: a pass recorded after its lease ran out changes no delivery), in one
# statement whose rows travel as one JSON text. Arrays of each column, two statements, cost the
# worker more CPU dumping every element (psycopg, per value) than the database spent (#17).
_RECORD = text(
    """
    WITH r AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS r(
            delivery_id bigint, token text, event_id text, endpoint_id text,
            attempt_number int, attempted_at timestamptz, status_code int, latency_ms int,
            response_excerpt text, error text, outcome text,
            status text, next_at timestamptz, completed_at timestamptz)
    ), attempts AS (
        INSERT INTO webhook_attempts (delivery_id, event_id, endpoint_id, attempt_number,
            attempted_at, status_code, latency_ms, response_excerpt, error, outcome)
        SELECT delivery_id, event_id, endpoint_id, attempt_number, attempted_at, status_code,
            latency_ms, response_excerpt, error, outcome
        FROM r
    )
    UPDATE webhook_deliveries d SET attempts = r.attempt_number, status = r.status,
        next_attempt_at = r.next_at, completed_at = r.completed_at, claim_token = NULL
    FROM r
    WHERE d.id = r.delivery_id AND d.claim_token = r.token
    """
)


def _record_row(result: AttemptResult, state: dict[str, Any]) -> dict[str, Any]:
    """One row of `_RECORD`: the attempt, and the next state `_next_state` gave its delivery."""
    delivery = result.delivery
    return {
        "delivery_id": delivery.delivery_id,
        "token": delivery.claim_token,
        "event_id": delivery.event_id,
        "endpoint_id": delivery.endpoint_id,
        "attempt_number": delivery.attempt_number,
        "attempted_at": result.attempted_at,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "response_excerpt": _storable(result.response_excerpt),
        "error": _storable(result.error),
        "outcome": result.outcome.value,
        "status": state["b_status"],
        "next_at": state["b_next"],
        "completed_at": state["b_completed"],
    }


def _storable(text: str | None) -> str | None:
    """PostgreSQL text holds no NUL: a receiver's reply may (shown as U+FFFD, kept visible).
    Nor does JSON carry a lone surrogate (an error text might): each becomes "?"."""
    if not text:
        return text
    text = text.replace("\x00", "\ufffd")
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")
