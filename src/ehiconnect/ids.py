"""Identifier and secret formats of the public contract (DESIGN §1)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Literal

ApiMode = Literal["test", "live"]
API_MODES: tuple[ApiMode, ...] = ("test", "live")


def as_api_mode(value: str) -> ApiMode:
    """A stored or typed mode string as `ApiMode`; anything else is a bug or bad input."""
    if value == "test":
        return "test"
    if value == "live":
        return "live"
    raise ValueError(f"api mode must be 'test' or 'live', not {value!r}")


def new_org_id() -> str:
    return str(uuid.uuid4())


def new_connection_id() -> str:
    """Connection ids are UUIDv4 strings (compat)."""
    return str(uuid.uuid4())


def new_task_id() -> str:
    """Task ids are 32 lowercase hex characters (compat)."""
    return uuid.uuid4().hex


def new_public_id(mode: ApiMode) -> str:
    return f"public_{mode}_{secrets.token_hex(12)}"


def new_private_key(mode: ApiMode) -> str:
    """A 256-bit random secret; only its hash is ever stored."""
    return f"private_{mode}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret.

    The secrets hashed here are 256-bit random values, so a fast hash is enough: there is nothing
    to brute-force, and a fast hash lets us look a key up by its hash in one indexed query.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def mode_of_key(key: str) -> ApiMode | None:
    """The mode a public id or private key belongs to, read from its prefix."""
    for prefix in ("public_", "private_"):
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            for mode in API_MODES:
                if rest.startswith(f"{mode}_"):
                    return mode
    return None
