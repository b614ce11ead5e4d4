"""Apply CatalogData to the database for one source, idempotently, and report what changed.

Entries of the same source that are missing from a new import are not deleted (connections and
stored ids keep resolving): brands and portals become `deprecated`, endpoints `suspended`, and none
of them shows in search any more. A brand's `merged_ids` become deprecated brand rows pointing at
the brand through `merged_into`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.catalog.data import CatalogData
from ehiconnect.catalog.models import CatalogBrand, CatalogEndpoint, CatalogPortal

Row = TypeVar("Row", CatalogBrand, CatalogPortal, CatalogEndpoint)

# Values a file may leave out: then the operator's setting (`catalog configure`) or what discovery
# found (the consent flow stores the advertised OAuth endpoints) is kept, not reset to empty.
_CONNECTION_FIELDS = (
    "client_id",
    "client_auth_method",
    "scopes",
    "aud_required",
    "authorization_endpoint",
    "token_endpoint",
    "revoke_endpoint",
)


@dataclass
class ImportReport:
    added: dict[str, int] = field(
        default_factory=lambda: {"brands": 0, "portals": 0, "endpoints": 0}
    )
    changed: dict[str, int] = field(
        default_factory=lambda: {"brands": 0, "portals": 0, "endpoints": 0}
    )
    removed: dict[str, int] = field(
        default_factory=lambda: {"brands": 0, "portals": 0, "endpoints": 0}
    )

    def as_json(self) -> dict[str, dict[str, int]]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}


async def import_catalog(
    session: AsyncSession, data: CatalogData, *, source: str, sandbox: bool
) -> ImportReport:
    data.check()
    report = ImportReport()

    endpoints = {e.id: e for e in data.endpoints}
    await _apply(
        session,
        CatalogEndpoint,
        "endpoints",
        {
            eid: {
                **{k: v for k, v in asdict(e).items() if k not in _CONNECTION_FIELDS},
                **{k: getattr(e, k) for k in _CONNECTION_FIELDS if getattr(e, k) is not None},
            }
            for eid, e in endpoints.items()
        },
        source=source,
        sandbox=sandbox,
        retired={"status": "suspended"},
        report=report,
    )
    await _apply(
        session,
        CatalogPortal,
        "portals",
        {
            p.id: {**asdict(p), "endpoint_ids": list(p.endpoint_ids), "status": "active"}
            for p in data.portals
        },
        source=source,
        sandbox=sandbox,
        retired={"status": "deprecated"},
        report=report,
    )
    brands: dict[str, dict[str, Any]] = {}
    for b in data.brands:
        values = asdict(b)
        values.pop("merged_ids")
        values.update(
            aliases=list(b.aliases),
            locations=list(b.locations),
            portal_ids=list(b.portal_ids),
            status="active",
            merged_into=None,
        )
        brands[b.id] = values
        for old_id in b.merged_ids:
            brands[old_id] = {
                "id": old_id,
                "name": b.name,
                "aliases": [],
                "locations": [],
                "portal_ids": [],
                "status": "deprecated",
                "merged_into": b.id,
            }
    await _apply(
        session,
        CatalogBrand,
        "brands",
        brands,
        source=source,
        sandbox=sandbox,
        retired={"status": "deprecated"},
        report=report,
    )
    return report


async def _apply(
    session: AsyncSession,
    model: type[Row],
    kind: str,
    wanted: dict[str, dict[str, Any]],
    *,
    source: str,
    sandbox: bool,
    retired: dict[str, str],
    report: ImportReport,
) -> None:
    existing = {
        row.id: row
        for row in (await session.scalars(select(model).where(model.id.in_(list(wanted)))))
    }
    for same_source in await session.scalars(select(model).where(model.source == source)):
        existing.setdefault(same_source.id, same_source)

    for rid, values in wanted.items():
        values = {**values, "source": source, "sandbox": sandbox}
        current = existing.get(rid)
        if current is None:
            session.add(model(**values))
            report.added[kind] += 1
        elif _update(current, values):
            report.changed[kind] += 1
    for rid, row in existing.items():
        if rid not in wanted and row.source == source and _update(row, retired):
            report.removed[kind] += 1
    await session.flush()


def _update(row: object, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed
