from __future__ import annotations

import pytest

from ehiconnect.sandbox.pkce import challenge_problem, s256_challenge, verifier_matches

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


def test_s256_matches_rfc7636_appendix_b() -> None:
    assert s256_challenge(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_right_verifier_matches_and_others_do_not() -> None:
    challenge = s256_challenge(VERIFIER)
    assert verifier_matches(VERIFIER, challenge)
    assert not verifier_matches(VERIFIER[:-1] + "A", challenge)
    assert not verifier_matches(None, challenge)
    assert not verifier_matches("short", s256_challenge("short"))  # below 43 characters


@pytest.mark.parametrize(
    ("challenge", "method", "problem"),
    [
        (None, "S256", "required"),
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "plain", "S256"),
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", None, "S256"),
        ("not-a-hash", "S256", "43"),
    ],
)
def test_authorize_rejects_missing_plain_or_malformed_challenges(
    challenge: str | None, method: str | None, problem: str
) -> None:
    message = challenge_problem(challenge, method)
    assert message is not None
    assert problem in message


def test_a_proper_s256_challenge_is_accepted() -> None:
    assert challenge_problem(s256_challenge(VERIFIER), "S256") is None
