"""OperationOutcome lines for an export's error report.

One issue per outcome: what failed (severity, an IssueType code, human diagnostics) and where
(the failing request URL in `details.text`, the resource type in `expression`). Never the resource
body: an outcome says that something went wrong, not what the patient's record contains. Secret
query parameters are masked in URLs, and diagnostics are cut to a bounded length.

Ids are derived from the content, so the same failure recorded twice (a resumed export) is one
line after NDJSON deduplication.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

Severity = Literal["fatal", "error", "warning", "information"]

# FHIR R4 IssueType codes an export uses (http://hl7.org/fhir/R4/valueset-issue-type.html).
ISSUE_CODES = frozenset(
    {
        "invalid",
        "structure",
        "security",
        "forbidden",
        "not-found",
        "not-supported",
        "too-costly",
        "processing",
        "exception",
        "timeout",
        "throttled",
        "transient",
        "incomplete",
    }
)
MAX_DIAGNOSTICS = 1000
_SECRET_PARAMS = frozenset({"access_token", "token", "code", "client_secret", "refresh_token"})


def issue_code_for_status(status: int | None) -> str:
    """The IssueType code that best describes an HTTP status (None: no response at all)."""
    if status is None:
        return "transient"
    if status in (401, 403):
        return "forbidden"
    if status in (404, 410):
        return "not-found"
    if status in (408, 504):
        return "timeout"
    if status == 429:
        return "throttled"
    if status in (400, 422):
        return "invalid"
    if 500 <= status < 600:
        return "transient" if status in (502, 503) else "exception"
    return "processing"


def mask_secret_params(url: str) -> str:
    """The URL with the values of credential-bearing query parameters replaced by `***`."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = [
        (name, "***" if name.lower() in _SECRET_PARAMS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="/:|,*")))


def operation_outcome(
    *,
    diagnostics: str,
    code: str = "exception",
    severity: Severity = "error",
    url: str | None = None,
    resource_type: str | None = None,
) -> dict[str, Any]:
    """One OperationOutcome resource describing one failure."""
    if code not in ISSUE_CODES:
        raise ValueError(f"{code!r} is not an IssueType code; use one of {sorted(ISSUE_CODES)}")
    if severity not in ("fatal", "error", "warning", "information"):
        raise ValueError(f"{severity!r} is not an issue severity")
    text = _storable(diagnostics)
    if len(text) > MAX_DIAGNOSTICS:
        text = text[:MAX_DIAGNOSTICS] + "…"
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": text}
    if url:
        issue["details"] = {"text": _storable(mask_secret_params(url))[:MAX_DIAGNOSTICS]}
    if resource_type:
        issue["expression"] = [resource_type]
    identity = orjson.dumps(issue, option=orjson.OPT_SORT_KEYS)
    outcome_id = "err-" + hashlib.blake2b(identity, digest_size=16).hexdigest()
    return {"resourceType": "OperationOutcome", "id": outcome_id, "issue": [issue]}


def _storable(text: str) -> str:
    """Text from a health system may hold NUL, which PostgreSQL (and many readers) cannot take:
    shown as U+FFFD instead."""
    return text.replace("\x00", "\ufffd")


def outcome_for_http_failure(
    *,
    url: str,
    status: int | None,
    resource_type: str | None = None,
    detail: str = "",
    code: str | None = None,
) -> dict[str, Any]:
    """An outcome for a request that failed: HTTP status (or none) and a short explanation;
    `code` is the IssueType when it says more than the status does."""
    what = f"HTTP {status}" if status is not None else "no response"
    diagnostics = f"Request failed with {what}" + (f": {detail}" if detail else "")
    severity: Severity = "warning" if status in (404, 410) else "error"
    return operation_outcome(
        diagnostics=diagnostics,
        code=code or issue_code_for_status(status),
        severity=severity,
        url=url,
        resource_type=resource_type,
    )


def outcome_line(outcome: dict[str, Any]) -> bytes:
    """The NDJSON line of an outcome."""
    return orjson.dumps(outcome, option=orjson.OPT_APPEND_NEWLINE)
