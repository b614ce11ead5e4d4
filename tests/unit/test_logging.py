from __future__ import annotations

import io
import json
import logging

import pytest

from ehiconnect.logging import JsonFormatter, RedactingFilter, configure_logging, redact_text

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


def test_records_go_to_the_current_stderr_even_after_the_first_one_was_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CLI command run in-process (a test runner's CliRunner) configures logging while stderr
    is a captured stream that is closed afterwards; later records (a server thread's) must go to
    the stderr of their time, not fail on the closed one."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    first, later = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr("sys.stderr", first)
        configure_logging("INFO")
        logging.getLogger("ehiconnect.test").info("while the command ran")
        first.close()
        monkeypatch.setattr("sys.stderr", later)
        logging.getLogger("ehiconnect.test").info("from a server thread, afterwards")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    [line] = later.getvalue().splitlines()  # the record itself, not a logging error report
    assert "from a server thread, afterwards" in line
