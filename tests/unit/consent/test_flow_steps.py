"""The pure steps of starting a flow: which requests may start one, and what scope it asks for."""

from __future__ import annotations

import base64
import secrets

import pytest

from ehiconnect.consent.flow import ConnectRequest, check_request, requested_scope
from ehiconnect.consent.pkce import s256_challenge
from ehiconnect.consent.result import handle_hash
from ehiconnect.errors import ApiError

REGISTERED = ("https://app.example.com/done",)


def new_handle() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def refused(request: ConnectRequest) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_request(request, REGISTERED)
    return caught.value


def test_a_flow_ends_only_at_a_registered_redirect_uri() -> None:
    assert check_request(ConnectRequest(redirect_uri=REGISTERED[0]), REGISTERED) is None
    assert check_request(ConnectRequest(), REGISTERED) is None  # finishes in the widget
    error = refused(ConnectRequest(redirect_uri="https://evil.example/done"))
    assert (error.status, error.code) == (403, "redirect_uri_not_registered")
    assert "ehiconnect orgs create --redirect-uri" in error.description


def test_a_result_challenge_gives_the_hash_of_its_handle() -> None:
    handle = new_handle()
    request = ConnectRequest(result_challenge=s256_challenge(handle))
    assert check_request(request, REGISTERED) == handle_hash(handle)


def test_a_result_challenge_is_refused_with_a_redirect_uri_or_malformed() -> None:
    challenge = s256_challenge(new_handle())
    both = refused(ConnectRequest(redirect_uri=REGISTERED[0], result_challenge=challenge))
    assert (both.status, both.code) == (400, "invalid_request")
    assert "redirect's query" in both.description
    malformed = refused(ConnectRequest(result_challenge="not-a-challenge"))
    assert (malformed.status, malformed.code) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"permission-v2"}, "launch/patient patient/Observation.rs offline_access"),
        ({"permission-v1"}, "launch/patient patient/Observation.read offline_access"),
        (
            {"permission-v1", "permission-v2"},
            "launch/patient patient/Observation.rs offline_access",
        ),
        (set(), "launch/patient patient/Observation.rs offline_access"),
    ],
)
def test_a_v1_only_server_is_asked_for_v1_scopes(capabilities: set[str], expected: str) -> None:
    scopes = "launch/patient patient/Observation.rs offline_access"
    assert requested_scope(scopes, frozenset(capabilities)) == expected
