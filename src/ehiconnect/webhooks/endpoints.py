"""Managing webhook endpoints and their signing secrets (the API, the console and the CLI).

Every read or change of an endpoint takes the `OrgScope` it acts in: an API key's organization and
mode, or, for the operator (CLI) and the sender, who act for whichever organization owns an
endpoint, the scope `owner_scope` finds for it. Another organization's endpoint answers like a
missing one (404); one of the caller's organization in the other mode names the key to use (403).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit, signing
from ehiconnect.clock import Clock
from ehiconnect.errors import Conflict, InvalidRequest, NotFound
from ehiconnect.ids import API_MODES, ApiMode, as_api_mode
from ehiconnect.orgs.service import get_org
from ehiconnect.scope import OrgScope
from ehiconnect.vault import Sealed, TokenCipher, VaultError
from ehiconnect.webhooks import events
from ehiconnect.webhooks.models import (
    ENDPOINT_DISABLED,
    ENDPOINT_ENABLED,
    WebhookEndpoint,
    WebhookEndpointSecret,
)
from ehiconnect.webhooks.urls import InvalidWebhookUrl, normalize_webhook_url
from ehiconnect.webhooks.wakeup import notify_deliverers

log = logging.getLogger(__name__)

WHERE_ENDPOINT_IDS_COME_FROM = "GET /v1/webhooks/endpoints lists yours"


@dataclasses.dataclass(frozen=True)
class CreatedEndpoint:
    endpoint_id: str
    secret: str  # shown once, here

    def as_json(self) -> dict[str, str]:
        return {"endpoint_id": self.endpoint_id, "secret": self.secret}


@dataclasses.dataclass(frozen=True)
class EndpointView:
    endpoint_id: str
    org_id: str
    api_mode: str
    url: str
    event_types: tuple[str, ...]
    status: str
    disabled_reason: str | None
    failing_since: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointView:
        return cls(
            endpoint_id=row.endpoint_id,
            org_id=row.org_id,
            api_mode=row.api_mode,
            url=row.url,
            event_types=tuple(row.event_types),
            status=row.status,
            disabled_reason=row.disabled_reason,
            failing_since=row.failing_since,
            created_at=row.created_at,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "endpoint_id": self.endpoint_id,
            "org_id": self.org_id,
            "api_mode": self.api_mode,
            "url": self.url,
            "event_types": list(self.event_types),
            "status": self.status,
            "disabled_reason": self.disabled_reason,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "created_at": self.created_at.isoformat(),
        }


def normalize_endpoint_url(url: str) -> str:
    try:
        return normalize_webhook_url(url)
    except InvalidWebhookUrl as exc:
        raise InvalidRequest(f"invalid webhook URL: {exc}") from None


def _check_mode(api_mode: str) -> ApiMode:
    for mode in API_MODES:
        if api_mode == mode:
            return mode
    raise InvalidRequest(f"api_mode must be 'test' or 'live', got {api_mode!r}")


def _check_types(event_types: Sequence[str]) -> list[str]:
    try:
        return list(events.validate_event_types(tuple(event_types)))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


async def add_endpoint(
    session: AsyncSession,
    clock: Clock,
    cipher: TokenCipher,
    *,
    org_id: str,
    api_mode: str,
    url: str,
    event_types: Sequence[str] = (),
    actor: str = "cli",
) -> CreatedEndpoint:
    """Register an endpoint; its first secret is returned once and never shown again."""
    mode = _check_mode(api_mode)
    await get_org(session, org_id)
    normalized = normalize_endpoint_url(url)
    types = _check_types(event_types)
    taken = await session.scalar(
        select(WebhookEndpoint.endpoint_id).where(
            WebhookEndpoint.org_id == org_id, WebhookEndpoint.url == normalized
        )
    )
    if taken is not None:
        raise Conflict(
            f"organization {org_id} already has endpoint {taken} at {normalized}; "
            "URLs are unique per organization: update or remove that endpoint instead",
            code="endpoint_url_taken",
        )
    now = clock.now()
    endpoint = WebhookEndpoint(
        endpoint_id=str(uuid.uuid4()),
        org_id=org_id,
        api_mode=mode,
        url=normalized,
        event_types=types,
        status=ENDPOINT_ENABLED,
        created_at=now,
    )
    secret = signing.generate_secret()
    session.add(endpoint)
    await session.flush()
    session.add(_sealed_secret(cipher, endpoint.endpoint_id, secret, now))
    await audit.record(
        session,
        clock,
        actor=actor,
        action="webhook_endpoint.added",
        org_id=org_id,
        detail={"endpoint_id": endpoint.endpoint_id, "api_mode": mode},
    )
    return CreatedEndpoint(endpoint_id=endpoint.endpoint_id, secret=secret)


async def get_endpoint(session: AsyncSession, scope: OrgScope, endpoint_id: str) -> WebhookEndpoint:
    """The endpoint, if `scope` admits it (`OrgScope.admit`: 404 or 403 otherwise)."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    return scope.admitted(
        endpoint, kind="webhook endpoint", object_id=endpoint_id, hint=WHERE_ENDPOINT_IDS_COME_FROM
    )


async def owner_scope(session: AsyncSession, endpoint_id: str) -> OrgScope:
    """The organization and mode that own an endpoint: the scope in which the operator (CLI)
    and the sender, acting for whoever owns it, reach it by id alone."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(
            f"no webhook endpoint has id {endpoint_id}; `ehiconnect webhooks list` shows them"
        )
    return OrgScope(org_id=endpoint.org_id, api_mode=as_api_mode(endpoint.api_mode))


async def list_endpoints(session: AsyncSession, scope: OrgScope) -> list[EndpointView]:
    """The scope's endpoints, oldest first."""
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.org_id == scope.org_id, WebhookEndpoint.api_mode == scope.api_mode
    )
    return await _views(session, query)


async def list_every_endpoint(
    session: AsyncSession, *, org_id: str | None = None, api_mode: str | None = None
) -> list[EndpointView]:
    """The operator's list (CLI): every organization's endpoints, or one's, or one mode's."""
    query = select(WebhookEndpoint)
    if org_id is not None:
        query = query.where(WebhookEndpoint.org_id == org_id)
    if api_mode is not None:
        query = query.where(WebhookEndpoint.api_mode == _check_mode(api_mode))
    return await _views(session, query)


async def _views(session: AsyncSession, query: Select[WebhookEndpoint]) -> list[EndpointView]:
    rows = await session.scalars(query.order_by(WebhookEndpoint.created_at))
    return [EndpointView.of(row) for row in rows.all()]


async def enable_endpoint(
    session: AsyncSession, clock: Clock, scope: OrgScope, endpoint_id: str, *, actor: str = "cli"
) -> EndpointView:
    """Turn delivery back on; deliveries still pending resume at once (on commit)."""
    endpoint = await get_endpoint(session, scope, endpoint_id)
    endpoint.status = ENDPOINT_ENABLED
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    endpoint.failing_since = None
    await _record(session, clock, endpoint, "webhook_endpoint.enabled", actor)
    await notify_deliverers(session)
    return EndpointView.of(endpoint)


async def disable_endpoint(
    session: AsyncSession,
    clock: Clock,
    scope: OrgScope,
    endpoint_id: str,
    *,
    reason: str = "disabled by the organization",
    actor: str = "cli",
) -> EndpointView:
    """Stop delivering; pending deliveries wait (and resume if the endpoint is enabled again)."""
    endpoint = await get_endpoint(session, scope, endpoint_id)
    endpoint.status = ENDPOINT_DISABLED
    endpoint.disabled_reason = reason
    endpoint.disabled_at = clock.now()
    await _record(session, clock, endpoint, "webhook_endpoint.disabled", actor, reason=reason)
    return EndpointView.of(endpoint)


async def remove_endpoint(
    session: AsyncSession, clock: Clock, scope: OrgScope, endpoint_id: str, *, actor: str = "cli"
) -> None:
    """Delete the endpoint with its secrets, deliveries and their attempt log."""
    endpoint = await get_endpoint(session, scope, endpoint_id)
    await _record(session, clock, endpoint, "webhook_endpoint.removed", actor)
    await session.execute(
        delete(WebhookEndpoint).where(WebhookEndpoint.endpoint_id == endpoint.endpoint_id)
    )


async def rotate_secret(
    session: AsyncSession,
    clock: Clock,
    cipher: TokenCipher,
    scope: OrgScope,
    endpoint_id: str,
    *,
    grace: dt.timedelta,
    actor: str = "cli",
) -> str:
    """A new secret; the current ones keep signing (alongside it) until `grace` has passed."""
    endpoint = await get_endpoint(session, scope, endpoint_id)
    now = clock.now()
    retire_at = now + grace
    await session.execute(
        update(WebhookEndpointSecret)
        .where(
            WebhookEndpointSecret.endpoint_id == endpoint.endpoint_id,
            or_(
                WebhookEndpointSecret.expires_at.is_(None),
                WebhookEndpointSecret.expires_at > retire_at,
            ),
        )
        .values(expires_at=retire_at)
    )
    secret = signing.generate_secret()
    session.add(_sealed_secret(cipher, endpoint.endpoint_id, secret, now))
    await _record(
        session,
        clock,
        endpoint,
        "webhook_endpoint.secret_rotated",
        actor,
        old_secrets_expire_at=retire_at.isoformat(),
    )
    return secret


async def active_secrets(
    session: AsyncSession, cipher: TokenCipher, endpoint_ids: Iterable[str], now: dt.datetime
) -> dict[str, list[str]]:
    """The secrets that sign at `now`, newest first, per endpoint."""
    rows = await session.scalars(
        select(WebhookEndpointSecret)
        .where(
            WebhookEndpointSecret.endpoint_id.in_(list(endpoint_ids)),
            or_(
                WebhookEndpointSecret.expires_at.is_(None),
                WebhookEndpointSecret.expires_at > now,
            ),
        )
        .order_by(WebhookEndpointSecret.created_at.desc(), WebhookEndpointSecret.id.desc())
    )
    found: dict[str, list[str]] = {}
    for row in rows.all():
        sealed = Sealed(kid=row.secret_kid, ciphertext=row.secret_ciphertext)
        try:
            secret = cipher.open(sealed, context=_secret_context(row.endpoint_id))
        except VaultError as exc:
            # One unreadable secret must not stop other endpoints' deliveries.
            log.warning(
                "cannot open a webhook secret",
                extra={"endpoint_id": row.endpoint_id, "kid": row.secret_kid, "reason": str(exc)},
            )
            continue
        found.setdefault(row.endpoint_id, []).append(secret)
    return found


def _secret_context(endpoint_id: str) -> str:
    # Binds each ciphertext to its endpoint: copied to another endpoint's row, it does not open.
    return f"webhook_endpoint:{endpoint_id}:secret"


def _sealed_secret(
    cipher: TokenCipher, endpoint_id: str, secret: str, now: dt.datetime
) -> WebhookEndpointSecret:
    sealed = cipher.seal(secret, context=_secret_context(endpoint_id))
    return WebhookEndpointSecret(
        endpoint_id=endpoint_id,
        secret_kid=sealed.kid,
        secret_ciphertext=sealed.ciphertext,
        created_at=now,
    )


async def _record(
    session: AsyncSession,
    clock: Clock,
    endpoint: WebhookEndpoint,
    action: str,
    actor: str,
    **detail: str,
) -> None:
    await audit.record(
        session,
        clock,
        actor=actor,
        action=action,
        org_id=endpoint.org_id,
        detail={"endpoint_id": endpoint.endpoint_id, "api_mode": endpoint.api_mode, **detail},
    )
