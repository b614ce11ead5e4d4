"""Discovery documents: `.well-known/smart-configuration`, the OpenID Connect configuration at
`{issuer}/.well-known/openid-configuration`, and the server's JWKS.

Every capability and scope listed here is one the sandbox really honours;
`tests/integration/sandbox/test_smart_conformance.py` walks the list and checks each against
behaviour, and fails on a capability it has no check for. Not offered (so not listed): EHR launch
(`launch-ehr`, the `launch` scope), `online_access` / `permission-online` (the portal keeps no
sign-in session a refresh token could be bound to), `user/` and `system/` scopes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ehiconnect.sandbox.config import HealthSystem
from ehiconnect.sandbox.scopes import GRANTABLE_NON_CLINICAL
from ehiconnect.sandbox.web.common import (
    auth_url,
    json_response,
    sandbox_state,
    system_or_none,
    unknown_system,
)

CAPABILITIES = (
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-v1",
    "permission-v2",
)
SCOPES_SUPPORTED = (
    *GRANTABLE_NON_CLINICAL,
    "patient/*.read",
    "patient/*.rs",
    "patient/*.r",
)
ID_TOKEN_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "profile")
_CACHE = {"Cache-Control": "public, max-age=300"}


def _server_metadata(request: Request, system: HealthSystem) -> dict[str, Any]:
    """What both discovery documents say about the authorization server."""
    slug = system.slug
    return {
        "issuer": auth_url(request, slug, "").rstrip("/"),
        "jwks_uri": auth_url(request, slug, "jwks"),
        "authorization_endpoint": auth_url(request, slug, "authorize"),
        "token_endpoint": auth_url(request, slug, "token"),
        "introspection_endpoint": auth_url(request, slug, "introspect"),
        "revocation_endpoint": auth_url(request, slug, "revoke"),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(SCOPES_SUPPORTED),
    }


async def smart_configuration(request: Request) -> Response:
    """SMART App Launch 2 discovery; JSON whatever the Accept header says."""
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    document = {**_server_metadata(request, system), "capabilities": list(CAPABILITIES)}
    return json_response(document, headers=_CACHE)


async def openid_configuration(request: Request) -> Response:
    """OpenID Connect Discovery 1.0 §3, where an id_token's `iss` leads a client to the keys."""
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    document = {
        **_server_metadata(request, system),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": list(ID_TOKEN_CLAIMS),
    }
    return json_response(document, headers=_CACHE)


async def jwks(request: Request) -> Response:
    """The public keys that sign this sandbox's access tokens (ES256) and id_tokens (RS256)."""
    if system_or_none(request) is None:
        return unknown_system(request)
    state = sandbox_state(request)
    keys = [state.signing_key.as_dict(private=False), state.id_token_key.as_dict(private=False)]
    return json_response({"keys": keys}, headers=_CACHE)
