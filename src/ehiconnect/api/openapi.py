"""What the OpenAPI document says about authentication and errors.

Private routes authenticate through `api.deps.get_principal`, which declares the two security
schemes below, so every route that needs a key says so in `/openapi.json`. Error responses are the
envelope of DESIGN §1, published as the `ErrorEnvelope` component; routers and routes list the
statuses they can answer with `responses=` built here.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.security import HTTPBearer
from fastapi.security.http import HTTPBase
from pydantic import BaseModel, Field

# Both schemes only document: they never refuse a request (auto_error=False, and HTTPBase does not
# decode the header), so `orgs.credentials.parse_authorization` stays the one reader of
# credentials and every refusal keeps its envelope 401. FastAPI's HTTPBasic is not used because it
# raises its own 401 on a malformed header.
BASIC_AUTH = HTTPBase(
    scheme="basic",
    scheme_name="basicAuth",
    description="HTTP Basic with your key pair: user `public_test_…`/`public_live_…`, password "
    "the matching `private_test_…`/`private_live_…` key. The key decides the mode.",
    auto_error=False,
)
BEARER_AUTH = HTTPBearer(
    scheme_name="bearerAuth",
    description="`Authorization: Bearer <private key>` (`private_test_…` or `private_live_…`).",
    auto_error=False,
)


class ErrorEnvelope(BaseModel):
    """Every error answer of the platform API."""

    success: Literal[False] = False
    error: str = Field(description="A stable machine-readable code, e.g. `not_found`")
    error_description: str = Field(description="What went wrong and what to do about it")


_DESCRIPTIONS = {
    400: "The request is malformed or refers to something that cannot be used",
    401: "No valid credentials: send HTTP Basic `public_id:private_key` or a Bearer private key",
    403: "These credentials or this origin may not do this (e.g. `api_mode_mismatch`)",
    404: "Nothing of yours has that id (another organization's objects look the same)",
    409: "The resource is not in a state that allows this",
    410: "It existed but has expired or been purged",
    413: "The request body is too large",
    422: "A parameter or the body failed validation; the description names the field",
    429: "Too many requests; retry after the `Retry-After` seconds",
    503: "The service cannot answer now; retry later",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting `statuses` with the envelope schema."""
    return {
        status: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


# Any route may refuse bad parameters; routes with a body also one that is too large.
PUBLIC_ERRORS = error_responses(400, 403, 404, 422, 429)
PRIVATE_ERRORS = error_responses(400, 401, 403, 404, 422)
BODY_ERRORS = error_responses(413)
