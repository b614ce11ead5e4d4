"""Creating organizations, issuing and rotating their keys, and authenticating callers."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit
from ehiconnect.clock import Clock
from ehiconnect.db.models import ApiKey, Organization
from ehiconnect.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from ehiconnect.ids import (
    API_MODES,
    ApiMode,
    hash_secret,
    mode_of_key,
    new_org_id,
    new_private_key,
    new_public_id,
)
from ehiconnect.orgs.credentials import Credentials, Principal
from ehiconnect.orgs.validation import normalize_origin, normalize_redirect_uri
from ehiconnect.scope import OrgScope


@dataclass(frozen=True)
class KeyPair:
    public_id: str
    private_key: str


@dataclass(frozen=True)
class CreatedOrg:
    org_id: str
    name: str
    keys: dict[ApiMode, KeyPair] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "org_id": self.org_id,
            "name": self.name,
            **{
                mode: {"public_id": pair.public_id, "private_key": pair.private_key}
                for mode, pair in self.keys.items()
            },
        }


async def create_org(
    session: AsyncSession,
    clock: Clock,
    *,
    name: str,
    redirect_uris: Sequence[str] = (),
    origins: Sequence[str] = (),
    logo_url: str | None = None,
    privacy_policy_url: str | None = None,
    website: str | None = None,
    actor: str = "cli",
) -> CreatedOrg:
    """A new organization with a test and a live key pair; the private keys are shown only here."""
    if not name.strip():
        raise InvalidRequest("an organization needs a non-empty name")
    org = Organization(
        org_id=new_org_id(),
        name=name.strip(),
        redirect_uris=sorted({normalize_redirect_uri(u) for u in redirect_uris}),
        allowed_origins=sorted({normalize_origin(o) for o in origins}),
        logo_url=logo_url,
        privacy_policy_url=privacy_policy_url,
        website=website,
    )
    session.add(org)
    await session.flush()  # the keys reference it
    keys: dict[ApiMode, KeyPair] = {}
    for mode in API_MODES:
        pair = KeyPair(public_id=new_public_id(mode), private_key=new_private_key(mode))
        session.add(_key_row(org.org_id, mode, pair))
        keys[mode] = pair
    await session.flush()
    await audit.record(session, clock, actor=actor, action="org.created", org_id=org.org_id)
    return CreatedOrg(org_id=org.org_id, name=org.name, keys=keys)


def _key_row(org_id: str, mode: ApiMode, pair: KeyPair) -> ApiKey:
    return ApiKey(
        org_id=org_id,
        api_mode=mode,
        public_id=pair.public_id,
        secret_hash=hash_secret(pair.private_key),
        secret_hint=pair.private_key[:13] + "…" + pair.private_key[-4:],
    )


async def list_orgs(session: AsyncSession) -> list[Organization]:
    return list(
        (await session.scalars(select(Organization).order_by(Organization.created_at))).all()
    )


async def get_org(session: AsyncSession, org_id: str) -> Organization:
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound(f"no organization has id {org_id}; `ehiconnect orgs list` shows them")
    return org


async def public_ids(session: AsyncSession, org_id: str) -> dict[str, str]:
    rows = await session.execute(
        select(ApiKey.api_mode, ApiKey.public_id).where(ApiKey.org_id == org_id).distinct()
    )
    return {mode: public_id for mode, public_id in rows.all()}


async def rotate_key(
    session: AsyncSession,
    clock: Clock,
    scope: OrgScope,
    *,
    grace: dt.timedelta,
    actor: str = "cli",
) -> KeyPair:
    """Issue a new private key for the public id of the scope's organization and mode; current
    keys keep working for `grace`."""
    org_id, mode = scope.org_id, scope.api_mode
    await get_org(session, org_id)
    ids = await public_ids(session, org_id)
    if mode not in ids:
        raise NotFound(f"organization {org_id} has no {mode} key pair")
    now = clock.now()
    retire_at = now + grace
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.org_id == org_id,
            ApiKey.api_mode == mode,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > retire_at),
        )
        .values(expires_at=retire_at)
    )
    pair = KeyPair(public_id=ids[mode], private_key=new_private_key(mode))
    session.add(_key_row(org_id, mode, pair))
    await audit.record(
        session,
        clock,
        actor=actor,
        action="key.rotated",
        org_id=org_id,
        detail={"api_mode": mode, "old_keys_expire_at": retire_at.isoformat()},
    )
    return pair


async def authenticate(session: AsyncSession, clock: Clock, credentials: Credentials) -> Principal:
    key = await session.scalar(
        select(ApiKey).where(ApiKey.secret_hash == hash_secret(credentials.private_key))
    )
    if key is None or (
        credentials.public_id is not None
        and not hmac.compare_digest(key.public_id, credentials.public_id)
    ):
        raise Unauthorized("the key is not valid; check that you copied the whole private key")
    if key.revoked_at is not None:
        raise Unauthorized("this key was revoked; use a current key of your organization")
    if key.expires_at is not None and key.expires_at <= clock.now():
        raise Unauthorized(
            "this key was rotated out and its grace period has ended; use the newest key"
        )
    mode = credentials.api_mode
    return Principal(org_id=key.org_id, api_mode=mode, public_id=key.public_id, key_id=key.id)


async def org_for_public_id(
    session: AsyncSession, public_id: str, api_mode: str | None = None
) -> tuple[Organization, ApiMode]:
    """The organization behind a public id (browser-facing calls), checked against `api_mode`."""
    mode = mode_of_key(public_id)
    if mode is None or not public_id.startswith("public_"):
        raise InvalidRequest(
            "public_id is malformed: it should start with public_test_ or public_live_"
        )
    if api_mode is not None and api_mode != mode:
        if api_mode not in API_MODES:
            raise InvalidRequest("api_mode must be 'test' or 'live'")
        raise Forbidden(
            f"a {mode} public id cannot be used in {api_mode} mode; use your {api_mode} public id",
            code="api_mode_mismatch",
        )
    org_id = await session.scalar(
        select(ApiKey.org_id).where(ApiKey.public_id == public_id).limit(1)
    )
    if org_id is None:
        raise NotFound("no organization has this public_id; check the widget's public-id attribute")
    return await get_org(session, org_id), mode
