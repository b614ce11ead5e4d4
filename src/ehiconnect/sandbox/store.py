"""In-memory state of the authorization server: pending logins, codes, grants, tokens, jtis.

One process, one store. Everything the HTTP handlers remember goes through `InMemoryAuthStore`,
so a shared store (e.g. for several sandbox processes) can replace it later without touching
the handlers. Secrets (codes, tokens) are random 256-bit values; they are never logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import threading
from dataclasses import dataclass

from ehiconnect.sandbox.scopes import ScopeSet


@dataclass
class PendingAuthorization:
    """An accepted `authorize` request waiting for the patient's login and consent."""

    request_id: str
    system_slug: str
    client_id: str
    redirect_uri: str
    state: str
    scope: ScopeSet
    code_challenge: str
    expires_at: dt.datetime
    nonce: str | None = None
    """OpenID Connect `nonce` from `authorize`, echoed in the id_token."""
    persona_id: str | None = None
    """Set once the patient has signed in."""


@dataclass
class AuthorizationCode:
    system_slug: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    persona_id: str
    patient_id: str
    scope: ScopeSet
    expires_at: dt.datetime
    nonce: str | None = None
    used: bool = False
    grant_id: str | None = None
    """The grant the code was exchanged for; revoked if the code is replayed."""


@dataclass
class Grant:
    """One consent: a patient allowed one client a scope at one system."""

    grant_id: str
    system_slug: str
    client_id: str
    persona_id: str
    patient_id: str
    scope: ScopeSet
    revoked: bool = False


@dataclass
class AccessToken:
    grant_id: str
    scope: ScopeSet
    expires_at: dt.datetime
    requests: int = 0
    revoked: bool = False


@dataclass
class RefreshToken:
    grant_id: str
    scope: ScopeSet
    expires_at: dt.datetime | None
    active: bool = True


#: Expired codes and access tokens are forgotten this long after expiry, so a long-running
#: sandbox does not grow without bound while late requests still get a precise error.
FORGET_AFTER = dt.timedelta(hours=1)


class InMemoryAuthStore:
    """Dictionaries behind a lock (handlers run on the server loop, admin calls on others)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, PendingAuthorization] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._jtis: dict[tuple[str, str], dt.datetime] = {}

    # pending logins --------------------------------------------------------------------------
    def add_pending(self, pending: PendingAuthorization, now: dt.datetime) -> None:
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.expires_at <= now]:
                del self._pending[key]
            self._pending[pending.request_id] = pending

    def get_pending(self, request_id: str, now: dt.datetime) -> PendingAuthorization | None:
        with self._lock:
            pending = self._pending.get(request_id)
            if pending is not None and pending.expires_at <= now:
                del self._pending[request_id]
                return None
            return pending

    def finish_pending(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    # codes -------------------------------------------------------------------------------------
    def add_code(self, code: AuthorizationCode, now: dt.datetime) -> str:
        value = secrets.token_urlsafe(32)
        with self._lock:
            for key in [k for k, c in self._codes.items() if c.expires_at + FORGET_AFTER < now]:
                del self._codes[key]
            self._codes[value] = code
        return value

    def take_code(self, value: str) -> AuthorizationCode | None:
        """A snapshot of the code record, which is marked used from now on.

        The snapshot's `used` tells whether it had been used before this call (a replay).
        """
        with self._lock:
            code = self._codes.get(value)
            if code is None:
                return None
            snapshot = dataclasses.replace(code)
            code.used = True
            return snapshot

    def link_code(self, value: str, grant_id: str) -> None:
        with self._lock:
            if value in self._codes:
                self._codes[value].grant_id = grant_id

    # grants and tokens -------------------------------------------------------------------------
    def add_grant(self, grant: Grant) -> None:
        with self._lock:
            self._grants[grant.grant_id] = grant

    def get_grant(self, grant_id: str) -> Grant | None:
        with self._lock:
            return self._grants.get(grant_id)

    def revoke_grant(self, grant_id: str) -> None:
        """Withdraw a consent: the grant and every token issued under it stop working."""
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is not None:
                grant.revoked = True
            for access in self._access.values():
                if access.grant_id == grant_id:
                    access.revoked = True
            for refresh in self._refresh.values():
                if refresh.grant_id == grant_id:
                    refresh.active = False

    def add_access_token(self, token: AccessToken, now: dt.datetime) -> str:
        value = secrets.token_urlsafe(32)
        with self._lock:
            for key in [k for k, t in self._access.items() if t.expires_at + FORGET_AFTER < now]:
                del self._access[key]
            self._access[value] = token
        return value

    def get_access_token(self, value: str) -> AccessToken | None:
        with self._lock:
            return self._access.get(value)

    def count_request(self, value: str) -> int:
        """Count one FHIR request made with the access token; returns the new count."""
        with self._lock:
            token = self._access.get(value)
            if token is None:
                return 0
            token.requests += 1
            return token.requests

    def revoke_access_token(self, value: str) -> None:
        with self._lock:
            token = self._access.get(value)
            if token is not None:
                token.revoked = True

    def add_refresh_token(self, token: RefreshToken) -> str:
        value = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh[value] = token
        return value

    def get_refresh_token(self, value: str) -> RefreshToken | None:
        with self._lock:
            return self._refresh.get(value)

    def retire_refresh_token(self, value: str) -> bool:
        """Deactivate a refresh token (rotation); False if it was already inactive."""
        with self._lock:
            token = self._refresh.get(value)
            if token is None or not token.active:
                return False
            token.active = False
            return True

    # private_key_jwt replay protection -------------------------------------------------------
    def remember_jti(
        self, client_id: str, jti: str, expires_at: dt.datetime, now: dt.datetime
    ) -> bool:
        """Record a client assertion's jti; False if it was seen before (a replay)."""
        with self._lock:
            for key in [k for k, exp in self._jtis.items() if exp < now]:
                del self._jtis[key]
            if (client_id, jti) in self._jtis:
                return False
            self._jtis[(client_id, jti)] = expires_at
            return True
