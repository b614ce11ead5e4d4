"""Move every sealed secret to the vault's active key (`ehiconnect vault reencrypt`).

After a new key becomes active, rows sealed with older keys stay readable as long as those keys
are configured. Re-sealing them lets an operator retire the old keys. Covered: connection tokens,
PKCE verifiers of consent flows, endpoint client secrets, webhook signing secrets and the
platform's private_key_jwt signing key.

Rows are walked in primary-key order, one batch per transaction, so progress survives an
interruption and a rerun only touches what is left. A connection's tokens are re-sealed under the
same per-connection lock as a token refresh, so a refresh that rotates the refresh token meanwhile
is never overwritten with the older one. A row that does not open (its key is gone, or it was
tampered with) is counted and left as it is; the rest carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tokens import lock_connection
from ehiconnect.consent.models import ConsentFlow
from ehiconnect.db.database import Database
from ehiconnect.smart.client_keys import ClientSigningKey, sealing_context
from ehiconnect.vault import Sealed, TokenCipher, VaultError
from ehiconnect.webhooks.models import WebhookEndpointSecret

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200


@dataclass(frozen=True)
class SealedKind:
    """Where one kind of secret lives: its table, key-id column and ciphertext columns."""

    name: str
    model: type[Any]
    key: str  # primary key attribute
    kid: str
    ciphertexts: tuple[tuple[str, Callable[[Any], str]], ...]  # (attribute, AAD context of a row)
    per_connection_lock: bool = False


SEALED_KINDS: tuple[SealedKind, ...] = (
    SealedKind(
        name="connection_tokens",
        model=ConnectionTokens,
        key="org_connection_id",
        kid="kid",
        ciphertexts=(
            ("access_token_ct", lambda r: f"connection:{r.org_connection_id}:access_token"),
            ("refresh_token_ct", lambda r: f"connection:{r.org_connection_id}:refresh_token"),
        ),
        per_connection_lock=True,
    ),
    SealedKind(
        name="consent_flows",
        model=ConsentFlow,
        key="state_hash",
        kid="verifier_kid",
        ciphertexts=(("verifier_ct", lambda r: f"flow:{r.state_hash}"),),
    ),
    SealedKind(
        name="endpoint_client_secrets",
        model=CatalogEndpoint,
        key="id",
        kid="client_secret_kid",
        ciphertexts=(("client_secret_ct", lambda r: f"endpoint:{r.id}:client_secret"),),
    ),
    SealedKind(
        name="webhook_secrets",
        model=WebhookEndpointSecret,
        key="id",
        kid="secret_kid",
        ciphertexts=(("secret_ciphertext", lambda r: f"webhook_endpoint:{r.endpoint_id}:secret"),),
    ),
    SealedKind(
        name="client_signing_keys",
        model=ClientSigningKey,
        key="name",
        kid="sealed_kid",
        ciphertexts=(("private_jwk_ct", lambda r: sealing_context(r.name)),),
    ),
)


@dataclass
class RekeyReport:
    active_kid: str
    resealed: dict[str, int] = field(default_factory=lambda: {k.name: 0 for k in SEALED_KINDS})
    unreadable: dict[str, int] = field(default_factory=lambda: {k.name: 0 for k in SEALED_KINDS})

    @property
    def complete(self) -> bool:
        """True when no row is left on an older key."""
        return not any(self.unreadable.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "active_kid": self.active_kid,
            "resealed": dict(self.resealed),
            "unreadable": dict(self.unreadable),
        }


async def reencrypt_secrets(
    database: Database,
    cipher: TokenCipher,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[str, int], None] | None = None,
) -> RekeyReport:
    """Re-seal every secret not yet under the active key; `on_batch(kind, resealed)` per batch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RekeyReport(active_kid=cipher.active_kid)
    for kind in SEALED_KINDS:
        after: Any = None
        while True:
            async with database.transaction() as session:
                after, resealed, unreadable = await _reseal_batch(
                    session, cipher, kind, after=after, batch_size=batch_size
                )
            report.resealed[kind.name] += resealed
            report.unreadable[kind.name] += unreadable
            if on_batch is not None and resealed:
                on_batch(kind.name, resealed)
            if after is None:
                break
    return report


async def _reseal_batch(
    session: AsyncSession,
    cipher: TokenCipher,
    kind: SealedKind,
    *,
    after: Any,
    batch_size: int,
) -> tuple[Any, int, int]:
    """Re-seal up to `batch_size` rows past `after`; (last key seen or None when done, counts)."""
    model = kind.model
    key_column = getattr(model, kind.key)
    kid_column = getattr(model, kind.kid)
    wanted = kid_column.is_not(None) & (kid_column != cipher.active_kid)
    if after is not None:
        wanted = wanted & (key_column > after)
    keys = list(
        await session.scalars(
            select(key_column).where(wanted).order_by(key_column).limit(batch_size)
        )
    )
    if not keys:
        return None, 0, 0
    if kind.per_connection_lock:
        for connection_id in keys:  # sorted: two re-keyers never wait on each other in a cycle
            await lock_connection(session, str(connection_id))
    rows = await session.scalars(
        select(model)
        .where(key_column.in_(keys), kid_column != cipher.active_kid)
        .order_by(key_column)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    resealed = unreadable = 0
    for row in rows:
        if _reseal_row(cipher, kind, row):
            resealed += 1
        else:
            unreadable += 1
    await session.flush()
    last = keys[-1] if len(keys) == batch_size else None
    return last, resealed, unreadable


def _reseal_row(cipher: TokenCipher, kind: SealedKind, row: Any) -> bool:
    old_kid = getattr(row, kind.kid)
    opened: dict[str, str | None] = {}
    try:
        for attribute, context in kind.ciphertexts:
            ciphertext = getattr(row, attribute)
            opened[attribute] = (
                None
                if ciphertext is None
                else cipher.open(Sealed(old_kid, ciphertext), context=context(row))
            )
    except VaultError as exc:
        log.warning(
            "a sealed secret could not be opened and keeps its old key",
            extra={
                "kind": kind.name,
                "row": str(getattr(row, kind.key)),
                "kid": old_kid,
                "reason": str(exc),
            },
        )
        return False
    for attribute, context in kind.ciphertexts:
        plaintext = opened[attribute]
        if plaintext is not None:
            setattr(row, attribute, cipher.seal(plaintext, context=context(row)).ciphertext)
    setattr(row, kind.kid, cipher.active_kid)
    return True
