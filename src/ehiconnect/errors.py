"""Errors, grouped by what the caller should do about them.

ApiError and its subclasses are what a platform API caller sees: each carries the envelope's
`error` code, a human `error_description` that says what to do, and an HTTP status.

    ApiError
    ├── InvalidRequest      400  fix the request and send it again
    ├── Unauthorized        401  send valid credentials
    ├── Forbidden           403  these credentials may not do this (wrong mode, origin, org)
    ├── NotFound            404  nothing of yours has that id
    ├── Conflict            409  the resource is not in a state that allows this
    ├── Gone                410  it existed but has expired or been purged
    ├── RateLimited         429  slow down; retry after `retry_after` seconds
    └── ServiceUnavailable  503  try again later

Work that talks to health systems (crawler, token refresh) raises instead:

    SourceError
    ├── TemporaryError      retry later with backoff
    ├── ReconsentRequired   the patient must sign in again (revoked or expired consent)
    └── FatalError          give up and report `failure_reason`
"""

from __future__ import annotations

from typing import ClassVar


class ApiError(Exception):
    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "invalid_request"

    def __init__(self, description: str, *, code: str | None = None) -> None:
        super().__init__(description)
        self.code = code or self.default_code
        self.description = description


class InvalidRequest(ApiError):
    status = 400
    default_code = "invalid_request"


class Unauthorized(ApiError):
    status = 401
    default_code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    default_code = "forbidden"


class NotFound(ApiError):
    status = 404
    default_code = "not_found"


class Conflict(ApiError):
    status = 409
    default_code = "conflict"


class Gone(ApiError):
    status = 410
    default_code = "gone"


class RateLimited(ApiError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, description: str, *, retry_after: int) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class ServiceUnavailable(ApiError):
    status = 503
    default_code = "service_unavailable"

    def __init__(
        self, description: str, *, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(description, code=code)
        self.retry_after = retry_after


class SourceError(Exception):
    """A failure while talking to a health system."""


class TemporaryError(SourceError):
    """Transient: retry with backoff."""


class ReconsentRequired(SourceError):
    """The patient must authorize again (refresh token rejected, consent revoked at the source)."""


class FatalError(SourceError):
    """Give up; `failure_reason` is one of the export failure reasons of DESIGN §2."""

    def __init__(self, description: str, *, failure_reason: str) -> None:
        super().__init__(description)
        self.failure_reason = failure_reason
