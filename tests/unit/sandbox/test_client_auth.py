from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from ehiconnect.sandbox.client_keys import SANDBOX_CLIENT_PRIVATE_JWKS
from ehiconnect.sandbox.config import Client, SandboxConfig
from ehiconnect.sandbox.store import InMemoryAuthStore
from ehiconnect.sandbox.systems import (
    ASYMMETRIC_CLIENT_ID,
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
)
from ehiconnect.sandbox.web.client_auth import (
    JWT_BEARER,
    ClientAuthError,
    authenticate_client,
    identifies_client,
)

TOKEN_URL = "http://127.0.0.1:8500/harbor/auth/token"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
KEYS = KeySet.import_key_set(SANDBOX_CLIENT_PRIVATE_JWKS)  # type: ignore[arg-type]


def assertion(alg: str = "RS384", **overrides: Any) -> str:
    kid = {"RS384": "sandbox-rs384", "ES384": "sandbox-es384"}[alg]
    claims = {
        "iss": ASYMMETRIC_CLIENT_ID,
        "sub": ASYMMETRIC_CLIENT_ID,
        "aud": TOKEN_URL,
        "exp": int((NOW + dt.timedelta(minutes=4)).timestamp()),
        "jti": str(uuid.uuid4()),
        **overrides,
    }
    return jwt.encode({"alg": alg, "kid": kid}, claims, KEYS.get_by_kid(kid), algorithms=[alg])


def auth(
    form: dict[str, str],
    header: str | None = None,
    store: InMemoryAuthStore | None = None,
    implied: str | None = None,
) -> Client:
    return authenticate_client(
        form,
        header,
        SandboxConfig(),
        store or InMemoryAuthStore(),
        (TOKEN_URL,),
        NOW,
        implied_client_id=implied,
    )


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def jwt_form(value: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": value}


def test_public_client_names_itself() -> None:
    assert auth({"client_id": PUBLIC_CLIENT_ID}).client_id == PUBLIC_CLIENT_ID


def test_confidential_client_cannot_pose_as_public() -> None:
    with pytest.raises(ClientAuthError, match="client_secret_basic"):
        auth({"client_id": CONFIDENTIAL_CLIENT_ID})


def test_a_public_client_may_be_implied_by_its_refresh_token() -> None:
    assert auth({}, implied=PUBLIC_CLIENT_ID).client_id == PUBLIC_CLIENT_ID


def test_a_confidential_client_is_never_implied() -> None:
    with pytest.raises(ClientAuthError, match="confidential"):
        auth({}, implied=CONFIDENTIAL_CLIENT_ID)


def test_a_named_client_id_wins_over_the_implied_one() -> None:
    # the token endpoint then refuses the refresh token as issued to another client
    with pytest.raises(ClientAuthError, match="confidential"):
        auth({"client_id": CONFIDENTIAL_CLIENT_ID}, implied=PUBLIC_CLIENT_ID)


def test_nothing_named_and_nothing_implied_is_refused() -> None:
    with pytest.raises(ClientAuthError, match="no client authentication"):
        auth({})


@pytest.mark.parametrize(
    ("form", "header", "identified"),
    [
        ({}, None, False),
        ({"grant_type": "refresh_token", "refresh_token": "x"}, None, False),
        ({"client_id": PUBLIC_CLIENT_ID}, None, True),
        ({}, basic(CONFIDENTIAL_CLIENT_ID, "s"), True),
        ({"client_assertion": "x"}, None, True),
        ({}, "Bearer abc", False),
    ],
)
def test_identifies_client(form: dict[str, str], header: str | None, identified: bool) -> None:
    assert identifies_client(form, header) is identified


def test_unknown_client_is_refused() -> None:
    with pytest.raises(ClientAuthError, match="unknown client_id"):
        auth({"client_id": "who"})


def test_client_secret_basic_checks_the_secret() -> None:
    header = basic(CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET)
    assert auth({}, header).client_id == CONFIDENTIAL_CLIENT_ID
    with pytest.raises(ClientAuthError, match="secret does not match"):
        auth({}, basic(CONFIDENTIAL_CLIENT_ID, "wrong"))


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_private_key_jwt_accepts_rs384_and_es384(alg: str) -> None:
    assert auth(jwt_form(assertion(alg))).client_id == ASYMMETRIC_CLIENT_ID


def test_a_replayed_jti_is_refused() -> None:
    store = InMemoryAuthStore()
    value = assertion(jti="once")
    auth(jwt_form(value), store=store)
    with pytest.raises(ClientAuthError, match="replay"):
        auth(jwt_form(assertion(jti="once")), store=store)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"aud": "https://elsewhere/token"}, "aud"),
        ({"exp": int((NOW - dt.timedelta(minutes=5)).timestamp())}, "expired"),
        ({"exp": int((NOW + dt.timedelta(hours=1)).timestamp())}, "5 minutes"),
        ({"sub": "someone-else"}, "sub"),
        ({"jti": ""}, "jti"),
    ],
)
def test_bad_assertion_claims_are_refused(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ClientAuthError, match=problem):
        auth(jwt_form(assertion(**overrides)))


def test_an_assertion_signed_with_another_key_is_refused() -> None:
    stranger = ECKey.generate_key("P-384", parameters={"kid": "sandbox-es384"})
    claims = {"iss": ASYMMETRIC_CLIENT_ID, "sub": ASYMMETRIC_CLIENT_ID, "aud": TOKEN_URL,
              "exp": int(NOW.timestamp()) + 60, "jti": "x"}  # fmt: skip
    value = jwt.encode(
        {"alg": "ES384", "kid": "sandbox-es384"}, claims, stranger, algorithms=["ES384"]
    )
    with pytest.raises(ClientAuthError, match="signature"):
        auth(jwt_form(value))


def test_rs256_is_not_accepted_even_with_the_clients_own_key() -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    client = Client(
        client_id="rs256-app",
        kind="confidential-asymmetric",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    config = SandboxConfig(clients=(client,))
    claims = {"iss": "rs256-app", "sub": "rs256-app", "aud": TOKEN_URL,
              "exp": int(NOW.timestamp()) + 60}  # fmt: skip

    def attempt(alg: str, jti: str) -> Client:
        value = jwt.encode({"alg": alg, "kid": "k1"}, {**claims, "jti": jti}, key, algorithms=[alg])
        return authenticate_client(
            jwt_form(value), None, config, InMemoryAuthStore(), (TOKEN_URL,), NOW
        )

    assert attempt("RS384", "a").client_id == "rs256-app"
    with pytest.raises(ClientAuthError, match="signature"):
        attempt("RS256", "b")
