"""PKCE (RFC 7636) with S256, the only method SMART App Launch 2 allows."""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_verifier() -> str:
    """43 characters of base64url: 256 bits of randomness, inside RFC 7636's 43 to 128 range."""
    return secrets.token_urlsafe(32)


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_state() -> str:
    """An unguessable, single-use state value (256 bits; the flow stores only its hash)."""
    return secrets.token_urlsafe(32)
