"""What an operator sees of catalog entries and sets on an endpoint (the CLI today; the console).

An endpoint's connection settings (client id, authentication method, client secret, scopes, `aud`,
private network) are data per endpoint. The client secret is sealed by the vault, bound to its
endpoint, and never shown back: views say only whether one is set.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.catalog.models import CatalogBrand, CatalogEndpoint, CatalogPortal
from ehiconnect.catalog.service import brand_views, endpoint_view, portal_view
from ehiconnect.errors import InvalidRequest, NotFound
from ehiconnect.vault import TokenCipher


class ClientAuthMethod(enum.StrEnum):
    """How the platform authenticates at an endpoint's token endpoint."""

    none = "none"
    client_secret_basic = "client_secret_basic"  # noqa: S105 (a method name, not a secret)
    private_key_jwt = "private_key_jwt"


@dataclass(frozen=True)
class EndpointChanges:
    """What to set on one endpoint; `None` keeps the current value."""

    client_id: str | None = None
    auth_method: ClientAuthMethod | None = None
    client_secret: str | None = None
    scopes: str | None = None
    aud_required: bool | None = None
    allow_private_network: bool | None = None


async def configure_endpoint(
    session: AsyncSession, cipher: TokenCipher, endpoint_id: str, changes: EndpointChanges
) -> CatalogEndpoint:
    """Apply `changes` to the endpoint, refusing a `client_secret_basic` without a secret."""
    if changes.scopes is not None and not changes.scopes.split():
        raise InvalidRequest("the scopes are empty; give space-separated scopes")
    endpoint = await session.get(CatalogEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(
            f"no endpoint has id {endpoint_id}; find it with `ehiconnect catalog search`"
        )
    if changes.client_id is not None:
        endpoint.client_id = changes.client_id.strip() or None
    if changes.auth_method is not None:
        endpoint.client_auth_method = changes.auth_method.value
    if changes.scopes is not None:
        endpoint.scopes = " ".join(changes.scopes.split())
    if changes.aud_required is not None:
        endpoint.aud_required = changes.aud_required
    if changes.allow_private_network is not None:
        endpoint.allow_private_network = changes.allow_private_network
    if changes.client_secret is not None:
        sealed = cipher.seal(changes.client_secret, context=endpoint.client_secret_context)
        endpoint.client_secret_kid = sealed.kid
        endpoint.client_secret_ct = sealed.ciphertext
    elif changes.auth_method is ClientAuthMethod.none:
        # A public client has no secret: drop one left from an earlier setting.
        endpoint.client_secret_kid = None
        endpoint.client_secret_ct = None
    if endpoint.client_auth_method == ClientAuthMethod.client_secret_basic and (
        not endpoint.client_secret_ct
    ):
        raise InvalidRequest(
            "client_secret_basic needs a client secret: add --client-secret-stdin and "
            "pipe the secret in"
        )
    await session.flush()
    return endpoint


def endpoint_settings(endpoint: CatalogEndpoint) -> dict[str, Any]:
    """An endpoint as an operator sees it: its view plus connection settings, never the secret."""
    return {
        **endpoint_view(endpoint),
        "source": endpoint.source,
        "sandbox": endpoint.sandbox,
        "client_id": endpoint.client_id,
        "client_auth_method": endpoint.client_auth_method,
        "client_secret_set": endpoint.client_secret_ct is not None,
        "client_secret_kid": endpoint.client_secret_kid,
        "scopes": endpoint.scopes,
        "aud_required": endpoint.aud_required,
        "allow_private_network": endpoint.allow_private_network,
    }


async def describe_entry(session: AsyncSession, entry_id: str) -> dict[str, Any]:
    """The brand, portal or endpoint with this id (`kind` says which), with what an operator needs
    to know: status, source, whether it is a sandbox entry, an endpoint's connection settings."""
    brand = await session.get(CatalogBrand, entry_id)
    if brand is not None:
        [view] = await brand_views(session, [brand.id])
        return {
            "kind": "brand",
            **view,
            "status": brand.status,
            "merged_into": brand.merged_into,
            "source": brand.source,
            "sandbox": brand.sandbox,
        }
    portal = await session.get(CatalogPortal, entry_id)
    if portal is not None:
        endpoints = {
            eid: e for eid in portal.endpoint_ids if (e := await session.get(CatalogEndpoint, eid))
        }
        return {
            "kind": "portal",
            **portal_view(portal, endpoints),
            "status": portal.status,
            "source": portal.source,
            "sandbox": portal.sandbox,
        }
    endpoint = await session.get(CatalogEndpoint, entry_id)
    if endpoint is not None:
        return {"kind": "endpoint", **endpoint_settings(endpoint)}
    raise NotFound(
        f"no brand, portal or endpoint has id {entry_id}; find it with `ehiconnect catalog search`"
    )
