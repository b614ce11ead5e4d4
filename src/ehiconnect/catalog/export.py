"""The catalog export (compat: Fasten Connect's `GET /bridge/catalog/export`).

A private-key caller gets `{"brands.json", "portals.json", "endpoints.json"}`: links, valid 60
minutes, to its mode's catalog as JSON arrays. The links are signed and served by the platform
itself rather than presigned S3 URLs: the catalog is not a file in export storage but rows in
PostgreSQL, so each download is rendered from the current catalog (no snapshot to write, store and
clean up, the same behaviour with local or S3 storage), and nothing but the link is needed to read
it, as with a presigned URL. A link is its mode, file name and expiry sealed with the vault's
active key (AES-GCM, authenticated): it cannot be forged or altered, and every process of a fleet
(which shares the vault keys) can serve it.

Only what the widget and catalog API already show leaves: endpoint credentials (client id and
secret), sources and internal flags never do. Entries merged into another are left out; their ids
still resolve through the catalog API.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.catalog.models import CatalogBrand, CatalogEndpoint, CatalogEntry, CatalogPortal
from ehiconnect.catalog.service import brand_fields, endpoint_view, portal_fields
from ehiconnect.errors import Gone, NotFound
from ehiconnect.ids import ApiMode
from ehiconnect.vault import Sealed, TokenCipher, VaultError

FILES: Final = ("brands.json", "portals.json", "endpoints.json")
LINK_LIFETIME = dt.timedelta(minutes=60)
_CONTEXT = "catalog-export-link"
_ROWS_PER_CHUNK = 500


def seal_link(cipher: TokenCipher, *, mode: ApiMode, name: str, expires_at: dt.datetime) -> str:
    """The token in a download link: `<kid>.<base64url(sealed {mode, name, expiry})>`."""
    payload = orjson.dumps({"m": mode, "n": name, "e": int(expires_at.timestamp())}).decode()
    sealed = cipher.seal(payload, context=_CONTEXT)
    return f"{sealed.kid}.{base64.urlsafe_b64encode(sealed.ciphertext).decode().rstrip('=')}"


def open_link(cipher: TokenCipher, token: str, *, name: str, now: dt.datetime) -> ApiMode:
    """The mode a link grants `name` of; NotFound for a token this platform did not make (or for
    another file), Gone once it expired."""
    kid, _, encoded = token.rpartition(".")
    try:
        ciphertext = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        claims = orjson.loads(cipher.open(Sealed(kid=kid, ciphertext=ciphertext), context=_CONTEXT))
        mode, sealed_name, expiry = claims["m"], claims["n"], int(claims["e"])
    except (binascii.Error, ValueError, VaultError, KeyError, TypeError):
        raise NotFound(
            "this catalog export link is not valid; ask GET /v1/bridge/catalog/export for new links"
        ) from None
    if sealed_name != name or mode not in ("test", "live"):
        raise NotFound("this link is for another file; use the link given for this file")
    if now.timestamp() >= expiry:
        raise Gone("this catalog export link has expired; ask GET /v1/bridge/catalog/export again")
    result: ApiMode = "test" if mode == "test" else "live"
    return result


def _stamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def brand_entry(brand: CatalogBrand) -> dict[str, Any]:
    return {
        **brand_fields(brand),
        "logo_uri": brand.logo,
        "status": brand.status,
        "last_updated": _stamp(brand.updated_at),
    }


def portal_entry(portal: CatalogPortal) -> dict[str, Any]:
    return {
        **portal_fields(portal),
        "url": portal.portal_website,
        "status": portal.status,
        "last_updated": _stamp(portal.updated_at),
    }


def endpoint_entry(endpoint: CatalogEndpoint) -> dict[str, Any]:
    return {
        **endpoint_view(endpoint),
        "authorization_url": endpoint.authorization_endpoint,
        "token_url": endpoint.token_endpoint,
        "scopes_supported": endpoint.scopes.split(),
        "last_updated": _stamp(endpoint.updated_at),
    }


_RENDERED: Final[dict[str, tuple[type[CatalogEntry], Callable[[Any], dict[str, Any]]]]] = {
    "brands.json": (CatalogBrand, brand_entry),
    "portals.json": (CatalogPortal, portal_entry),
    "endpoints.json": (CatalogEndpoint, endpoint_entry),
}


async def catalog_json(session: AsyncSession, *, mode: ApiMode, name: str) -> AsyncIterator[bytes]:
    """One file as a JSON array, streamed in chunks of rows (flat memory whatever its size)."""
    if name not in _RENDERED:
        raise NotFound(f"no catalog file {name}; the files are {', '.join(FILES)}")
    model, render = _RENDERED[name]
    rows = await session.stream_scalars(
        select(model)
        .where(model.sandbox.is_(mode == "test"), model.merged_into.is_(None))
        .order_by(model.id)
        .execution_options(yield_per=_ROWS_PER_CHUNK)
    )
    yield b"["
    first = True
    async for partition in rows.partitions():
        chunk = b",".join(orjson.dumps(render(row)) for row in partition)
        yield chunk if first else b"," + chunk
        first = False
    yield b"]"
