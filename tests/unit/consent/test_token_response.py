"""A token response's `expires_in` in whatever shape a health system sends it."""

from __future__ import annotations

import httpx
import pytest

from ehiconnect.smart.client import parse_token_response


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3600, 3600),
        (59.9, 59),
        ("300", 300),
        (" 60 ", 60),
        ("3600s", None),
        ("", None),
        (True, None),
        (0, None),
        (-5, None),
        ("nan", None),
        ("inf", None),
        (1e300, 10 * 365 * 24 * 3600),
        ([60], None),
    ],
)
def test_expires_in_is_read_or_ignored_never_a_crash(value: object, seconds: int | None) -> None:
    response = httpx.Response(
        200, json={"access_token": "a", "token_type": "Bearer", "expires_in": value}
    )
    assert parse_token_response(response).expires_in == seconds
