"""Catalog reads for the API: search, one brand or portal, endpoint resolution by mode."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, any_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.catalog.models import CatalogBrand, CatalogEndpoint, CatalogPortal
from ehiconnect.catalog.search import BrandIndex, Page, SearchDoc, page_after, parse_search_after
from ehiconnect.errors import Forbidden, InvalidRequest, NotFound
from ehiconnect.ids import ApiMode

MAX_MERGE_HOPS = 5

CatalogRow = TypeVar("CatalogRow", CatalogBrand, CatalogPortal, CatalogEndpoint)


class CatalogSearcher:
    """Keeps one search index per mode, rebuilt when the catalog changes."""

    def __init__(self) -> None:
        self._indexes: dict[bool, tuple[tuple[object, ...], BrandIndex]] = {}
        self._lock = asyncio.Lock()

    async def search(
        self,
        session: AsyncSession,
        mode: ApiMode,
        *,
        query: str,
        city: str | None,
        state: str | None,
        limit: int,
        search_after: object = None,
    ) -> tuple[Page, list[dict[str, Any]]]:
        """A page of matches (`search_after`: the last hit's sort key, see `parse_search_after`)
        and the views of its brands, in order."""
        try:
            after = parse_search_after(search_after)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        index = await self._index(session, sandbox=(mode == "test"))
        ranked = index.rank(query, city=city, state=state)
        page = page_after(ranked, limit=limit, search_after=after)
        brands = await brand_views(session, page.brand_ids)
        return page, brands

    async def _index(self, session: AsyncSession, *, sandbox: bool) -> BrandIndex:
        version = tuple(
            (
                await session.execute(
                    select(func.count(), func.max(CatalogBrand.updated_at)).where(
                        CatalogBrand.sandbox.is_(sandbox)
                    )
                )
            ).one()
        )
        async with self._lock:
            cached = self._indexes.get(sandbox)
            if cached and cached[0] == version:
                return cached[1]
            rows = await session.scalars(
                select(CatalogBrand).where(
                    CatalogBrand.sandbox.is_(sandbox), CatalogBrand.status == "active"
                )
            )
            brands = list(rows)
            platforms = await _platforms_by_brand(session, brands)
            index = BrandIndex([_doc(row, platforms.get(row.id, ())) for row in brands])
            self._indexes[sandbox] = (version, index)
            return index


def _doc(brand: CatalogBrand, platform_types: tuple[str, ...]) -> SearchDoc:
    return SearchDoc(
        brand_id=brand.id,
        name=brand.name,
        aliases=tuple(brand.aliases),
        cities=frozenset(str(loc.get("city", "")).lower() for loc in brand.locations),
        states=frozenset(str(loc.get("state", "")).lower() for loc in brand.locations),
        platform_types=platform_types,
    )


async def _platforms_by_brand(
    session: AsyncSession, brands: list[CatalogBrand]
) -> dict[str, tuple[str, ...]]:
    """Each brand's endpoint platforms (distinct, catalog order), for the search aggregation."""
    portal_ids = {pid for brand in brands for pid in brand.portal_ids}
    portal_rows = await session.execute(
        select(CatalogPortal.id, CatalogPortal.endpoint_ids).where(CatalogPortal.id.in_(portal_ids))
    )
    portals: dict[str, list[str]] = {pid: list(eids) for pid, eids in portal_rows.all()}
    endpoint_ids = {eid for eids in portals.values() for eid in eids}
    endpoint_rows = await session.execute(
        select(CatalogEndpoint.id, CatalogEndpoint.platform_type).where(
            CatalogEndpoint.id.in_(endpoint_ids)
        )
    )
    kinds: dict[str, str] = {eid: kind for eid, kind in endpoint_rows.all()}
    return {
        brand.id: tuple(
            dict.fromkeys(
                kinds[eid]
                for pid in brand.portal_ids
                for eid in portals.get(pid, ())
                if kinds.get(eid)
            )
        )
        for brand in brands
    }


async def brand_views(session: AsyncSession, brand_ids: list[str]) -> list[dict[str, Any]]:
    """Brands with their portals and endpoints expanded, in the order of `brand_ids`."""
    brands = {
        b.id: b
        for b in await session.scalars(select(CatalogBrand).where(CatalogBrand.id.in_(brand_ids)))
    }
    portal_ids = {pid for b in brands.values() for pid in b.portal_ids}
    portals = {
        p.id: p
        for p in await session.scalars(
            select(CatalogPortal).where(CatalogPortal.id.in_(portal_ids))
        )
    }
    endpoint_ids = {eid for p in portals.values() for eid in p.endpoint_ids}
    endpoints = {
        e.id: e
        for e in await session.scalars(
            select(CatalogEndpoint).where(CatalogEndpoint.id.in_(endpoint_ids))
        )
    }
    return [brand_view(brands[bid], portals, endpoints) for bid in brand_ids if bid in brands]


def brand_fields(brand: CatalogBrand) -> dict[str, Any]:
    """A brand's public fields (the catalog API and its export show the same)."""
    return {
        "id": brand.id,
        "name": brand.name,
        "aliases": list(brand.aliases),
        "brand_website": brand.brand_website,
        "logo": brand.logo,
        "locations": list(brand.locations),
        "portal_ids": list(brand.portal_ids),
    }


def portal_fields(portal: CatalogPortal) -> dict[str, Any]:
    """A portal's public fields (the catalog API and its export show the same)."""
    return {
        "id": portal.id,
        "name": portal.name,
        "portal_website": portal.portal_website,
        "logo": portal.logo,
        "endpoint_ids": list(portal.endpoint_ids),
    }


def brand_view(
    brand: CatalogBrand,
    portals: dict[str, CatalogPortal],
    endpoints: dict[str, CatalogEndpoint],
) -> dict[str, Any]:
    """A brand with its portals and their endpoints expanded."""
    return {
        **brand_fields(brand),
        "portals": [
            portal_view(portals[pid], endpoints) for pid in brand.portal_ids if pid in portals
        ],
    }


def portal_view(portal: CatalogPortal, endpoints: dict[str, CatalogEndpoint]) -> dict[str, Any]:
    """A portal with its endpoints expanded."""
    return {
        **portal_fields(portal),
        "endpoints": [
            endpoint_view(endpoints[eid]) for eid in portal.endpoint_ids if eid in endpoints
        ],
    }


def endpoint_view(endpoint: CatalogEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "name": endpoint.name,
        "platform_type": endpoint.platform_type,
        "status": endpoint.status,
        "fhir_version": endpoint.fhir_version,
        "authorization_endpoint": endpoint.authorization_endpoint,
        "token_endpoint": endpoint.token_endpoint,
        "revoke_endpoint": endpoint.revoke_endpoint,
    }


@dataclass(frozen=True)
class Resolved:
    brand: CatalogBrand | None
    portal: CatalogPortal | None
    endpoint: CatalogEndpoint


async def _follow_merges(
    session: AsyncSession, model: type[CatalogRow], entry_id: str, what: str
) -> CatalogRow:
    """The entry, following `merged_into`, so ids stored before a merge keep working."""
    current = await session.get(model, entry_id)
    hops = 0
    while current is not None and current.merged_into and hops < MAX_MERGE_HOPS:
        current = await session.get(model, current.merged_into)
        hops += 1
    if current is None:
        raise NotFound(f"no {what} has {what}_id {entry_id}; search the catalog for it")
    return current


async def resolve_brand(session: AsyncSession, brand_id: str) -> CatalogBrand:
    return await _follow_merges(session, CatalogBrand, brand_id, "brand")


async def resolve_portal(session: AsyncSession, portal_id: str) -> CatalogPortal:
    return await _follow_merges(session, CatalogPortal, portal_id, "portal")


async def resolve_endpoint(session: AsyncSession, endpoint_id: str) -> CatalogEndpoint:
    return await _follow_merges(session, CatalogEndpoint, endpoint_id, "endpoint")


def check_mode(endpoint: CatalogEndpoint, mode: ApiMode) -> None:
    """Test keys reach only sandbox endpoints; live keys only real ones."""
    if mode == "test" and not endpoint.sandbox:
        raise Forbidden(
            f"endpoint {endpoint.id} is a live health system; test keys reach only sandbox "
            "endpoints — use your live public id",
            code="api_mode_mismatch",
        )
    if mode == "live" and endpoint.sandbox:
        raise Forbidden(
            f"endpoint {endpoint.id} is a sandbox health system; live keys reach only real "
            "endpoints — use your test public id",
            code="api_mode_mismatch",
        )


async def resolve_for_connect(
    session: AsyncSession,
    mode: ApiMode,
    *,
    brand_id: str | None,
    portal_id: str | None,
    endpoint_id: str | None,
) -> Resolved:
    """Pick the endpoint a patient connects to from whichever ids the widget sent."""
    brand = await resolve_brand(session, brand_id) if brand_id else None
    portal = await resolve_portal(session, portal_id) if portal_id else None
    if brand is not None and portal is not None and portal.id not in brand.portal_ids:
        raise InvalidRequest(f"portal {portal.id} does not belong to brand {brand.id}")
    if endpoint_id:
        endpoint = await resolve_endpoint(session, endpoint_id)
        if portal is not None and endpoint.id not in portal.endpoint_ids:
            raise InvalidRequest(f"endpoint {endpoint.id} does not belong to portal {portal.id}")
    else:
        candidates = list(portal.endpoint_ids) if portal else []
        if portal is None and brand is not None:
            for pid in brand.portal_ids:
                found = await session.get(CatalogPortal, pid)
                candidates.extend(found.endpoint_ids if found else [])
        active = [
            e
            for eid in candidates
            if (e := await session.get(CatalogEndpoint, eid)) is not None and e.status == "active"
        ]
        if len(active) != 1:
            raise InvalidRequest(
                "endpoint_id is required: the chosen brand or portal has "
                f"{len(active)} active endpoints"
            )
        endpoint = active[0]
    if endpoint.status != "active":
        raise Forbidden(
            f"endpoint {endpoint.id} is suspended; the health system cannot be connected now",
            code="endpoint_suspended",
        )
    check_mode(endpoint, mode)
    # Given only an endpoint (or a portal), name the portal and brand it belongs to when there
    # is exactly one, so the connection can show the patient which health system it is.
    if portal is None:
        portal = await _sole(
            session, select(CatalogPortal).where(any_(CatalogPortal.endpoint_ids) == endpoint.id)
        )
    if brand is None and portal is not None:
        brand = await _sole(
            session, select(CatalogBrand).where(any_(CatalogBrand.portal_ids) == portal.id)
        )
    return Resolved(brand=brand, portal=portal, endpoint=endpoint)


async def _sole(session: AsyncSession, query: Select[CatalogRow]) -> CatalogRow | None:
    """The one row `query` finds, None when it finds none or several."""
    found = list((await session.scalars(query.limit(2))).all())
    return found[0] if len(found) == 1 else None
