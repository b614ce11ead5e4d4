"""Built-in catalogs: health systems that ship beside the platform and make up test mode.

The platform imports none of them. Each registers itself by name in the `catalog.builtin_sources`
setting, `source name → "module:function"` (by default the sandbox's health systems), and is loaded
here with importlib. The function takes the base URL the test-mode systems answer at
(`sandbox.base_url`) and returns the `CatalogData` to import; its entries are imported under their
source name as test-mode (`sandbox`) entries. `catalog import` refuses those names, so an
operator's file cannot overwrite or retire them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.catalog.data import CatalogData
from ehiconnect.catalog.importer import ImportReport, import_catalog
from ehiconnect.db.locks import advisory_xact_lock
from ehiconnect.dotted import DottedNameError, load_function

BuiltinSource = Callable[[str], CatalogData]
"""Given the base URL the test-mode systems answer at, the catalog entries to list."""


class BuiltinSourceError(DottedNameError):
    """A `catalog.builtin_sources` entry names nothing usable; the message says which and why."""


def load_builtin_source(target: str) -> BuiltinSource:
    """The function a `"module:function"` entry names."""
    try:
        source: BuiltinSource = load_function(target, setting="catalog.builtin_sources")
    except DottedNameError as unusable:
        raise BuiltinSourceError(str(unusable)) from None
    return source


async def sync_builtin_catalog(
    session: AsyncSession, source: str, data: CatalogData
) -> ImportReport:
    """Upsert one built-in catalog as test-mode entries of `source`. API processes starting together
    take turns (each would otherwise find a row missing and insert it, and all but one fail on its
    primary key)."""
    await advisory_xact_lock(session, f"catalog:{source}-sync")
    return await import_catalog(session, data, source=source, sandbox=True)


async def sync_builtin_catalogs(
    session: AsyncSession, sources: Mapping[str, str], *, base_url: str
) -> dict[str, ImportReport]:
    """List every registered built-in catalog, served at `base_url`; what changed, per source."""
    reports = {}
    for source, target in sources.items():
        data = load_builtin_source(target)(base_url)
        reports[source] = await sync_builtin_catalog(session, source, data)
    return reports
