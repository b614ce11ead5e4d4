"""The platform's own key pair for `private_key_jwt` client authentication (SMART asymmetric).

One key for the whole fleet: the private key is kept in PostgreSQL (`client_signing_keys`),
sealed by the vault, created once by whichever process needs it first (INSERT … ON CONFLICT DO
NOTHING, then everyone reads the row that won). The public half is served at
`/.well-known/jwks.json`, which is the JWKS URL to register with a health system, so every API
process publishes the same JWKS.

Before the key moved to the database it lived in `<data_dir>/client-keys.json`; a process that
finds no key in the database but such a file imports the file's key, so a deployment keeps the
key it already registered. Assertions are RS384-signed JWTs with `iss = sub = client_id`, `aud` =
the token endpoint, a fresh `jti` and a five-minute lifetime (SMART App Launch "Client
Authentication: Asymmetric").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import LargeBinary, Text, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.database import Database
from ehiconnect.db.models import Base
from ehiconnect.vault import Sealed, TokenCipher, VaultError

log = logging.getLogger(__name__)

ALGORITHM = "RS384"
ASSERTION_LIFETIME_SECONDS = 300
KEY_NAME = "private_key_jwt"  # the one row; a name leaves room for a next key during rotation
_FILE = "client-keys.json"


class ClientSigningKey(Base):
    """The platform's private signing key, sealed by the vault (context `client_key:<name>`)."""

    __tablename__ = "client_signing_keys"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    kid: Mapped[str] = mapped_column(Text)  # the JWK's own key id, published in the JWKS
    sealed_kid: Mapped[str] = mapped_column(Text)  # the vault key that sealed it
    private_jwk_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


def sealing_context(name: str) -> str:
    return f"client_key:{name}"


class ClientSigner:
    def __init__(self, key: RSAKey) -> None:
        self._key = key
        self.kid = str(key.kid)

    def assertion(self, client_id: str, token_endpoint: str) -> str:
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        }
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def public_jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(private=False)
        public.update(alg=ALGORITHM, use="sig", key_ops=["verify"], kid=self.kid)
        return {"keys": [public]}


async def load_client_signer(
    database: Database, cipher: TokenCipher, data_dir: Path
) -> ClientSigner:
    """The fleet's signing key: from the database, else imported from the data directory's key
    file, else new; whichever process stores it first wins and every process uses that one."""
    async with database.transaction() as session:
        row = await session.get(ClientSigningKey, KEY_NAME)
    path = data_dir / _FILE
    local = _read_key_file(path) if path.exists() else None
    if row is None:
        candidate = local or _generate()
        sealed = cipher.seal(
            json.dumps(candidate.as_dict(private=True)), context=sealing_context(KEY_NAME)
        )
        async with database.transaction() as session:
            stored = await session.scalar(
                insert(ClientSigningKey)
                .values(
                    name=KEY_NAME,
                    kid=str(candidate.kid),
                    sealed_kid=sealed.kid,
                    private_jwk_ct=sealed.ciphertext,
                )
                .on_conflict_do_nothing()
                .returning(ClientSigningKey.kid)
            )
            row = await session.get(ClientSigningKey, KEY_NAME, populate_existing=True)
        if stored is not None:
            log.info(
                "client signing key stored in the database",
                extra={"kid": stored, "imported_from": str(path) if local else None},
            )
    if row is None:  # pragma: no cover - the row was just inserted or found
        raise RuntimeError("the client signing key row vanished while it was being created")
    key = _open(cipher, row)
    if local is not None and str(local.kid) != str(key.kid):
        log.warning(
            "the data directory's client-keys.json is not the fleet's signing key; the key in the "
            "database is used and published (remove the file to silence this)",
            extra={"path": str(path), "kid": str(key.kid)},
        )
    return ClientSigner(key)


def load_signer(data_dir: Path) -> ClientSigner:
    """The key in a data directory's key file, created if absent (the way keys were kept before
    they moved to the database; a file present at first start is imported)."""
    path = data_dir / _FILE
    if not path.exists():
        _create(path)
    return ClientSigner(_read_key_file(path))


def _open(cipher: TokenCipher, row: ClientSigningKey) -> RSAKey:
    try:
        plain = cipher.open(
            Sealed(row.sealed_kid, row.private_jwk_ct), context=sealing_context(row.name)
        )
    except VaultError as exc:
        raise VaultError(
            f"the platform's client signing key (private_key_jwt) could not be opened: {exc}; "
            "every process must have the same vault keys"
        ) from None
    key = RSAKey.import_key(json.loads(plain))
    return key


def _read_key_file(path: Path) -> RSAKey:
    keys = KeySet.import_key_set(json.loads(path.read_text()))
    key = keys.keys[0]
    if not isinstance(key, RSAKey):
        raise ValueError(f"{path} must hold an RSA key for {ALGORITHM}")
    return key


def _generate() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)}, private=True)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = _generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"keys": [key.as_dict(private=True)]}, handle)
    try:
        os.link(temporary, path)  # create-if-absent: concurrent starters agree on one key
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
