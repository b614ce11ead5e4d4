from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from ehiconnect.consent.authorize import (
    authorize_url,
    downgrade_to_v1,
    grant_problem,
    has_patient_access,
)
from ehiconnect.consent.pkce import new_state, new_verifier, s256_challenge


def test_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifier_and_state_are_long_and_fresh() -> None:
    assert 43 <= len(new_verifier()) <= 128
    assert len({new_state() for _ in range(100)}) == 100


def test_authorize_url_keeps_existing_query_and_adds_smart_parameters() -> None:
    url = authorize_url(
        "https://auth.example/authorize?tenant=7",
        client_id="c",
        redirect_uri="https://p.example/cb",
        scope="launch/patient patient/*.rs",
        state="st",
        code_challenge="ch",
        aud="https://fhir.example/r4",
    )
    query = parse_qs(urlsplit(url).query)
    assert query["tenant"] == ["7"]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["launch/patient patient/*.rs"]
    assert query["aud"] == ["https://fhir.example/r4"]
    without_aud = authorize_url(
        "https://a/x", client_id="c", redirect_uri="r", scope="s", state="t", code_challenge="c",
        aud=None,
    )  # fmt: skip
    assert "aud" not in parse_qs(urlsplit(without_aud).query)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("launch/patient patient/*.rs offline_access", True),
        ("patient/Observation.read", True),
        ("patient/*.r", True),
        ("patient/Observation.rs?category=laboratory", True),
        ("launch/patient openid fhirUser offline_access", False),
        ("user/*.read", False),
        ("patient/*.c", False),
        (None, False),
    ],
)
def test_patient_access_from_granted_scope(scope: str | None, expected: bool) -> None:
    assert has_patient_access(scope) is expected


def test_v2_scopes_downgrade_to_v1() -> None:
    assert (
        downgrade_to_v1(
            "launch/patient openid patient/*.rs patient/Observation.cruds offline_access"
        )
        == "launch/patient openid patient/*.read patient/Observation.* offline_access"
    )


def test_a_grant_without_patient_context_or_read_scope_cannot_export() -> None:
    assert grant_problem("123", "launch/patient patient/*.rs") is None
    assert "named no patient" in (grant_problem(None, "patient/*.rs") or "")
    assert "no patient-level read scope" in (grant_problem("123", "openid fhirUser") or "")
