"""Reading a catalog to import: its bytes from a file or an http(s) URL, then its format.

Shared by every way an operator imports a catalog (today `ehiconnect catalog import`). Errors are
`CatalogInputError`s whose message says what to do; the size limit keeps a wrong URL from filling
memory.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

from ehiconnect import __version__
from ehiconnect.catalog.brands_bundle import parse_brands_bundle
from ehiconnect.catalog.data import CatalogData
from ehiconnect.catalog.plain import parse_plain_catalog

DOWNLOAD_TIMEOUT_SECONDS = 60.0


class CatalogFormat(enum.StrEnum):
    auto = "auto"
    brands_bundle = "brands-bundle"
    plain = "plain"


class CatalogInputError(Exception):
    """The catalog could not be read or understood; the message says what to do."""


def read_catalog_source(location: str, *, max_bytes: int) -> tuple[bytes, str]:
    """The bytes of a catalog file or http(s) URL, and the default source name for it."""
    if location.startswith(("http://", "https://")):
        host = urlsplit(location).hostname
        if not host:
            raise CatalogInputError(f"{location} is not a usable URL")
        return _download(location, max_bytes=max_bytes), host
    if "://" in location:
        raise CatalogInputError(f"{location}: only files and http(s) URLs can be imported")
    path = Path(location)
    if not path.is_file():
        raise CatalogInputError(f"{path} is not a file; give a catalog file or an http(s) URL")
    size = path.stat().st_size
    if size > max_bytes:
        raise CatalogInputError(
            f"{path} is {size / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
            "raise it with --max-mb"
        )
    return path.read_bytes(), path.stem


def import_source_name(given: str | None, default: str, *, reserved: Collection[str]) -> str:
    """The source a catalog is imported as: `given`, else the file's stem or the URL's host; never
    a built-in catalog's (`reserved`): importing under it would retire the test-mode entries."""
    name = (given or default).strip()
    if not name:
        raise CatalogInputError("the source name is empty; pass --source")
    if name in reserved:
        raise CatalogInputError(
            f"the source name {name!r} is reserved for the sandbox (test-mode) catalog "
            "(`ehiconnect catalog sync-sandbox`); pass another --source"
        )
    return name


def _download(url: str, *, max_bytes: int) -> bytes:
    headers = {
        "Accept": "application/fhir+json, application/json",
        "User-Agent": f"ehiconnect/{__version__}",
    }
    try:
        with (
            httpx.Client(timeout=DOWNLOAD_TIMEOUT_SECONDS, follow_redirects=True) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise CatalogInputError(f"GET {url} answered {response.status_code}; check the URL")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise CatalogInputError(_too_big(url, max_bytes))
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise CatalogInputError(_too_big(url, max_bytes))
            return bytes(body)
    except httpx.TimeoutException:
        raise CatalogInputError(
            f"{url} did not answer within {DOWNLOAD_TIMEOUT_SECONDS:.0f} s; try again later "
            "or download the file and import it from disk"
        ) from None
    except httpx.HTTPError as exc:
        raise CatalogInputError(f"could not fetch {url}: {type(exc).__name__}: {exc}") from None


def _too_big(url: str, max_bytes: int) -> str:
    return f"{url} is larger than {max_bytes / 2**20:.0f} MiB; raise the limit with --max-mb"


def parse_catalog(
    raw: bytes, *, catalog_format: CatalogFormat, platform_type: str | None
) -> tuple[CatalogData, CatalogFormat]:
    """Parse a Brands Bundle or a plain catalog (auto: a FHIR Bundle is a Brands Bundle)."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogInputError(f"the catalog is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CatalogInputError('the catalog must be a JSON object (a Bundle, or {"brands": …})')
    if catalog_format is CatalogFormat.auto:
        is_bundle = document.get("resourceType") == "Bundle"
        catalog_format = CatalogFormat.brands_bundle if is_bundle else CatalogFormat.plain
    try:
        if catalog_format is CatalogFormat.brands_bundle:
            return (
                parse_brands_bundle(document, platform_type=platform_type or "smart"),
                catalog_format,
            )
        if platform_type:
            raise CatalogInputError(
                "--platform-type applies to Brands Bundles only: the plain format names "
                "platform_type on each endpoint"
            )
        if not {"brands", "portals", "endpoints"} & set(document):
            raise CatalogInputError(
                "this is neither a Brands Bundle (resourceType Bundle) nor a plain catalog "
                "(brands, portals, endpoints); see docs/catalog.md"
            )
        return parse_plain_catalog(document), catalog_format
    except (ValueError, TypeError, AttributeError) as exc:
        raise CatalogInputError(f"cannot read the {catalog_format.value} catalog: {exc}") from None
