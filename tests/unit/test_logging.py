from __future__ import annotations

import io
import json
import logging

import pytest

from ehiconnect.logging import JsonFormatter, RedactingFilter, redact_text

SECRETS = [
    "private_test_AbC123-_xyz",
    "private_live_QQQ",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_are_redacted_from_text(secret: str) -> None:
    assert secret not in redact_text(f"calling with {secret} now")


@pytest.mark.parametrize(
    "text",
    [
        "GET /callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj",
        "Authorization: Bearer abc.def.ghi",
        'body {"access_token": "tok-123", "refresh_token": "ref-456"}',
        "grant_type=refresh_token&refresh_token=ref-456&client_secret=s3cr3t",
    ],
)
def test_oauth_values_are_redacted(text: str) -> None:
    redacted = redact_text(text)
    for value in (
        "SplxlOBeZQQYbYS6WxSbIA",
        "af0ifjsldkj",
        "abc.def.ghi",
        "tok-123",
        "ref-456",
        "s3cr3t",
    ):
        assert value not in redacted
    assert "[redacted]" in redacted


def test_filter_redacts_message_args_and_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "key %s refused",
            "private_live_zzz",
            extra={"access_token": "tok-1", "url": "https://x/cb?code=abc", "count": 3},
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert "private_live_zzz" not in line["message"]
    assert line["access_token"] == "[redacted]"
    assert "abc" not in line["url"]
    assert line["count"] == 3


def test_harmless_text_is_left_alone() -> None:
    text = "exported 512 resources for connection 3f1c in 2.5 s"
    assert redact_text(text) == text
