"""Encryption of secrets at rest (OAuth tokens, PKCE verifiers, client secrets).

AES-256-GCM with a key id stored beside each ciphertext, so keys rotate without downtime: new
writes use the active key, reads use whichever key a row names, and `ehiconnect vault reencrypt`
moves old rows to the active key. Each ciphertext is bound to its row and field through the
associated data (e.g. b"connection:<id>:access_token"), so a ciphertext copied into another row
does not decrypt.

Keys come from settings (`vault.keys`, a kid → base64 map, plus `vault.active_kid`), typically
injected from a secret manager. With none configured, a key file is created in the data directory
(mode 0600) so that the embedded defaults work; production deployments should configure keys.
Every process of a fleet must hold the same keys: `key_checks()` gives a check value per key id
(an HMAC of a fixed label, never the key) that processes record and compare at start
(`ehiconnect.fleet`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

log = logging.getLogger(__name__)

_NONCE_BYTES = 12
_KEY_CHECK_LABEL = b"ehiconnect vault key check v1"


class VaultError(Exception):
    """A secret could not be decrypted: unknown key id, wrong key, or tampered ciphertext."""


@dataclass(frozen=True)
class Sealed:
    kid: str
    ciphertext: bytes  # nonce || ciphertext+tag


class TokenCipher:
    def __init__(
        self, keys: dict[str, bytes], active_kid: str, *, source: str = "vault.keys"
    ) -> None:
        if active_kid not in keys:
            raise ValueError(f"the active vault key id {active_kid!r} is not among the keys")
        for kid, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"vault key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._checks = {
            kid: hmac.new(key, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()
            for kid, key in keys.items()
        }
        self.active_kid = active_kid
        self.source = source  # where the keys came from, for messages: settings or a key file

    def key_checks(self) -> dict[str, str]:
        """Key id → HMAC-SHA256 of a fixed label under that key: equal values, equal keys."""
        return dict(self._checks)

    def seal(self, plaintext: str, *, context: str) -> Sealed:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = self._keys[self.active_kid].encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        return Sealed(kid=self.active_kid, ciphertext=nonce + ciphertext)

    def open(self, sealed: Sealed, *, context: str) -> str:
        key = self._keys.get(sealed.kid)
        if key is None:
            raise VaultError(
                f"no vault key with id {sealed.kid!r} is configured; restore it to read this secret"
            )
        nonce, ciphertext = sealed.ciphertext[:_NONCE_BYTES], sealed.ciphertext[_NONCE_BYTES:]
        try:
            return key.decrypt(nonce, ciphertext, context.encode()).decode()
        except InvalidTag:
            raise VaultError(
                "a stored secret failed its integrity check (wrong key or tampered row)"
            ) from None


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def cipher_from_config(
    configured: dict[str, str], active_kid: str | None, data_dir: Path
) -> TokenCipher:
    """The cipher from configured keys, else from the data directory's key file (made if absent)."""
    if configured:
        keys = {kid: _decode_key(kid, value) for kid, value in configured.items()}
        return TokenCipher(keys, active_kid or sorted(keys)[-1])
    return _file_cipher(data_dir / "vault-keys.json")


def add_file_key(data_dir: Path) -> str:
    """Add a new active key to the data directory's key file; returns its id."""
    path = data_dir / "vault-keys.json"
    stored = _read_key_file(path) if path.exists() else KeyFile()
    kid = dt.datetime.now(dt.UTC).strftime("k%Y%m%d%H%M%S%f")
    stored.keys[kid] = base64.b64encode(new_key()).decode()
    stored.active_kid = kid
    _write_key_file(path, stored)
    return kid


def _file_cipher(path: Path) -> TokenCipher:
    if not path.exists() and _create_key_file(path):
        log.warning(
            "created a vault key file in the data directory; configure vault keys from a secret "
            "manager for production",
            extra={"path": str(path)},
        )
    stored = _read_key_file(path)
    if not stored.active_kid:
        raise ValueError(f"{path} names no active key; add one with `ehiconnect vault add-key`")
    keys = {kid: _decode_key(kid, value) for kid, value in stored.keys.items()}
    return TokenCipher(keys, stored.active_kid, source=str(path))


class KeyFile(BaseModel):
    keys: dict[str, str] = {}
    active_kid: str | None = None


def _create_key_file(path: Path) -> bool:
    """Create the key file unless another process won the race; True when this one created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kid = dt.datetime.now(dt.UTC).strftime("k%Y%m%d%H%M%S%f")
    stored = KeyFile(keys={kid: base64.b64encode(new_key()).decode()}, active_kid=kid)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_private(temporary, stored)
    try:
        os.link(temporary, path)  # atomic create-if-absent: two starters never mint two keys
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink()


def _read_key_file(path: Path) -> KeyFile:
    return KeyFile.model_validate_json(path.read_text())


def _write_key_file(path: Path, stored: KeyFile) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_private(temporary, stored)
    os.replace(temporary, path)


def _write_private(path: Path, stored: KeyFile) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(stored.model_dump_json())
        handle.flush()
        os.fsync(handle.fileno())


def _decode_key(kid: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"vault key {kid!r} is not valid base64") from None
