"""The demo's customer: an organization with test keys and a webhook endpoint at the tracker.

Made once and found again on later runs: the test key pair (and the token of the demo tracker's
FHIR API) is kept in `<data_dir>/demo.json` (owner-only, like the vault key beside it), because
the platform stores private keys hashed.
When that file is gone or names an organization the database does not know (a fresh database),
a new organization is made. The webhook secret is read back from the platform (sealed with the
token vault), so it is never written anywhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.cli.demo_logic import (
    DEMO_ORG_NAME,
    DEMO_ORIGIN,
    DEMO_REDIRECT_URI,
    STATE_FILE,
    DemoCredentials,
    parse_state,
    render_state,
)
from ehiconnect.errors import Unauthorized
from ehiconnect.orgs.credentials import Credentials
from ehiconnect.orgs.service import authenticate, create_org
from ehiconnect.runtime import Runtime
from ehiconnect.scope import OrgScope
from ehiconnect.webhooks import endpoints
from ehiconnect.webhooks.models import ENDPOINT_ENABLED


@dataclass(frozen=True)
class DemoOrg:
    credentials: DemoCredentials
    endpoint_id: str
    webhook_secret: str
    reused: bool


async def ensure_demo_org(runtime: Runtime, webhook_url: str) -> DemoOrg:
    """The demo organization (reused when the saved keys still work) and its endpoint."""
    path = runtime.settings.data_dir / STATE_FILE
    async with runtime.database.transaction() as session:
        saved = _read_state(path)
        credentials = saved if saved and await _still_valid(session, runtime, saved) else None
        reused = credentials is not None
        if credentials is None:
            created = await create_org(
                session,
                runtime.clock,
                name=DEMO_ORG_NAME,
                redirect_uris=[DEMO_REDIRECT_URI],
                origins=[DEMO_ORIGIN],
                actor="demo",
            )
            pair = created.keys["test"]
            credentials = DemoCredentials(created.org_id, pair.public_id, pair.private_key)
        endpoint_id, secret = await _ensure_endpoint(
            session, runtime, credentials.org_id, webhook_url
        )
    if not credentials.fhir_api_token:
        credentials = dataclasses.replace(credentials, fhir_api_token=secrets.token_urlsafe(32))
    if credentials != saved:
        _write_state(path, credentials)  # after the commit: never names an org that is not there
    return DemoOrg(credentials, endpoint_id, secret, reused)


async def _still_valid(session: AsyncSession, runtime: Runtime, saved: DemoCredentials) -> bool:
    try:
        principal = await authenticate(
            session,
            runtime.clock,
            Credentials(private_key=saved.private_key, public_id=saved.public_id, api_mode="test"),
        )
    except Unauthorized:
        return False
    return principal.org_id == saved.org_id


async def _ensure_endpoint(
    session: AsyncSession, runtime: Runtime, org_id: str, url: str
) -> tuple[str, str]:
    """The org's test endpoint at `url` (enabled) and its newest secret; endpoints the demo made
    at other URLs (an earlier run's tracker port) are disabled so nothing is sent there."""
    wanted = endpoints.normalize_endpoint_url(url)
    scope = OrgScope(org_id=org_id, api_mode="test")
    found: str | None = None
    for view in await endpoints.list_endpoints(session, scope):
        if view.url == wanted:
            found = view.endpoint_id
            if view.status != ENDPOINT_ENABLED:
                await endpoints.enable_endpoint(session, runtime.clock, scope, found, actor="demo")
        elif view.status == ENDPOINT_ENABLED:
            await endpoints.disable_endpoint(
                session,
                runtime.clock,
                scope,
                view.endpoint_id,
                reason=f"the demo's tracker now listens at {wanted}",
                actor="demo",
            )
    if found is None:
        created = await endpoints.add_endpoint(
            session,
            runtime.clock,
            runtime.cipher,
            org_id=org_id,
            api_mode="test",
            url=wanted,
            actor="demo",
        )
        return created.endpoint_id, created.secret
    now = runtime.clock.now()
    active = await endpoints.active_secrets(session, runtime.cipher, [found], now)
    if active.get(found):
        return found, active[found][0]
    # Sealed with a vault key this data directory no longer has: issue a fresh one at once.
    secret = await endpoints.rotate_secret(
        session, runtime.clock, runtime.cipher, scope, found, grace=dt.timedelta(0), actor="demo"
    )
    return found, secret


def _read_state(path: Path) -> DemoCredentials | None:
    try:
        return parse_state(path.read_text())
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _write_state(path: Path, credentials: DemoCredentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render_state(credentials))
    os.replace(temporary, path)
