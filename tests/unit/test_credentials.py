from __future__ import annotations

import base64

import pytest

from ehiconnect.errors import Unauthorized
from ehiconnect.orgs.credentials import parse_authorization


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_carries_public_id_and_key() -> None:
    creds = parse_authorization(_basic("public_live_abc", "private_live_xyz"))
    assert (creds.public_id, creds.private_key, creds.api_mode) == (
        "public_live_abc",
        "private_live_xyz",
        "live",
    )


def test_bearer_carries_the_key_alone() -> None:
    creds = parse_authorization("bearer   private_test_xyz ")
    assert (creds.public_id, creds.private_key, creds.api_mode) == (
        None,
        "private_test_xyz",
        "test",
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no credentials"),
        ("", "no credentials"),
        ("Digest abc", "unsupported authorization scheme"),
        ("Basic %%%", "not valid base64"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "lack a ':'"),
        (_basic("public_test_a", "secret"), "private key is malformed"),
        (_basic("pk_a", "private_test_b"), "public id is malformed"),
        (_basic("public_test_a", "private_live_b"), "same mode"),
        ("Bearer private_prod_x", "private key is malformed"),
    ],
)
def test_malformed_credentials_say_what_to_fix(header: str | None, message: str) -> None:
    with pytest.raises(Unauthorized, match=message):
        parse_authorization(header)
