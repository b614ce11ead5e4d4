"""A minimal SMART app (the platform's side of the flow), written from the spec for the tests."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from ehiconnect.clock import Clock
from ehiconnect.sandbox.client_keys import SANDBOX_CLIENT_PRIVATE_JWKS
from ehiconnect.sandbox.patient_browser import PatientBrowser
from ehiconnect.sandbox.pkce import s256_challenge
from ehiconnect.sandbox.systems import (
    ASYMMETRIC_CLIENT_ID,
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
)

ClientAuth = Literal["none", "basic", "jwt-rs384", "jwt-es384"]
CLIENT_IDS: dict[ClientAuth, str] = {
    "none": PUBLIC_CLIENT_ID,
    "basic": CONFIDENTIAL_CLIENT_ID,
    "jwt-rs384": ASYMMETRIC_CLIENT_ID,
    "jwt-es384": ASYMMETRIC_CLIENT_ID,
}
FULL_SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"
REDIRECT_URI = "http://127.0.0.1:9/callback"
PASSWORDS = {"amy": "amy-sandbox", "hugo": "hugo-sandbox", "tina": "tina-sandbox",
             "beth": "beth-sandbox", "theo": "theo-sandbox", "carl": "carl-sandbox",
             "tess": "tess-sandbox"}  # fmt: skip


@dataclass
class Authorization:
    url: str
    verifier: str
    state: str


@dataclass
class SmartApp:
    http: httpx.Client
    server_url: str
    slug: str
    auth: ClientAuth = "none"
    redirect_uri: str = REDIRECT_URI
    clock: Clock | None = None
    """The sandbox's clock, to date client assertions; wall time when None."""
    jti_sent: list[str] = field(default_factory=list)

    @property
    def client_id(self) -> str:
        return CLIENT_IDS[self.auth]

    @property
    def fhir_base(self) -> str:
        return f"{self.server_url}/{self.slug}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.server_url}/{self.slug}/auth/token"

    def begin(self, scope: str = FULL_SCOPE, **overrides: str | None) -> Authorization:
        verifier = secrets.token_urlsafe(48)
        state = secrets.token_urlsafe(12)
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": scope,
            "state": state,
            "aud": self.fhir_base,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
            **overrides,
        }
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return Authorization(
            f"{self.server_url}/{self.slug}/auth/authorize?{query}", verifier, state
        )

    def sign_in(self, started: Authorization, username: str, **kwargs: Any) -> dict[str, str]:
        """Drive the portal's forms; the query of the redirect back to us."""
        location = PatientBrowser(self.http).authorize(
            started.url, username, PASSWORDS[username], **kwargs
        )
        assert location.startswith(self.redirect_uri)
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def connect(self, username: str, scope: str = FULL_SCOPE, **kwargs: Any) -> dict[str, Any]:
        """The whole launch: authorize, sign in, consent, exchange the code."""
        started = self.begin(scope)
        back = self.sign_in(started, username, **kwargs)
        assert back["state"] == started.state
        response = self.exchange(back["code"], started.verifier)
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def exchange(self, code: str, verifier: str, redirect_uri: str | None = None) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or self.redirect_uri,
            "code_verifier": verifier,
        }
        return self.post_token("token", form)

    def refresh(self, refresh_token: str, scope: str | None = None) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope:
            form["scope"] = scope
        return self.post_token("token", form)

    def revoke(self, token: str) -> httpx.Response:
        return self.post_token("revoke", {"token": token})

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.post_token("introspect", {"token": token})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def post_token(
        self, endpoint: str, form: dict[str, str], jti: str | None = None
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        form = dict(form)
        if self.auth == "none":
            form["client_id"] = self.client_id
        elif self.auth == "basic":
            raw = f"{self.client_id}:{CONFIDENTIAL_CLIENT_SECRET}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        else:
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = self.client_assertion(jti)
        return self.http.post(f"{self.server_url}/{self.slug}/auth/{endpoint}", data=form,
                              headers=headers)  # fmt: skip

    def client_assertion(self, jti: str | None = None) -> str:
        alg = "RS384" if self.auth == "jwt-rs384" else "ES384"
        kid = "sandbox-rs384" if alg == "RS384" else "sandbox-es384"
        keys = KeySet.import_key_set(SANDBOX_CLIENT_PRIVATE_JWKS)  # type: ignore[arg-type]
        jti = jti or str(uuid.uuid4())
        self.jti_sent.append(jti)
        now = self.clock.now() if self.clock else dt.datetime.now(dt.UTC)
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                  "exp": int(now.timestamp()) + 240, "jti": jti}  # fmt: skip
        return jwt.encode({"alg": alg, "kid": kid}, claims, keys.get_by_kid(kid), algorithms=[alg])

    def get(self, token: str, path: str, **params: Any) -> httpx.Response:
        url = path if path.startswith("http") else f"{self.fhir_base}/{path}"
        return self.http.get(url, params=params or None,
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
