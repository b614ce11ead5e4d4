"""Discovery documents: `.well-known/smart-configuration` and the server's JWKS."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

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
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-v1",
    "permission-v2",
)
SCOPES_SUPPORTED = (
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.read",
    "patient/*.rs",
    "patient/*.r",
)


async def smart_configuration(request: Request) -> Response:
    """SMART App Launch 2 discovery; JSON whatever the Accept header says."""
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    slug = system.slug
    return json_response(
        {
            "issuer": auth_url(request, slug, "").rstrip("/"),
            "jwks_uri": auth_url(request, slug, "jwks"),
            "authorization_endpoint": auth_url(request, slug, "authorize"),
            "token_endpoint": auth_url(request, slug, "token"),
            "introspection_endpoint": auth_url(request, slug, "introspect"),
            "revocation_endpoint": auth_url(request, slug, "revoke"),
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SCOPES_SUPPORTED),
            "capabilities": list(CAPABILITIES),
        },
        headers={"Cache-Control": "public, max-age=300"},
    )


async def jwks(request: Request) -> Response:
    """The public key that signs this sandbox's access tokens."""
    if system_or_none(request) is None:
        return unknown_system(request)
    key = sandbox_state(request).signing_key
    return json_response({"keys": [key.as_dict(private=False)]})
