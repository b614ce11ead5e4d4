"""PKCE (RFC 7636), S256 only, as SMART App Launch 2 requires."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def challenge_problem(challenge: str | None, method: str | None) -> str | None:
    """Why an authorize request's PKCE parameters are unacceptable, or `None` if they are fine."""
    if not challenge:
        return "code_challenge is required (PKCE with S256)"
    if method != "S256":
        return f"code_challenge_method must be S256, got {method or 'none'!r}"
    if not _CHALLENGE.match(challenge):
        return "code_challenge must be 43 base64url characters (SHA-256 of the verifier)"
    return None


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    """Whether `verifier` is well formed and hashes to `challenge` (constant-time compare)."""
    if not verifier or not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier), challenge)
