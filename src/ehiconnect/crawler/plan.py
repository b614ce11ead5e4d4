"""Decide what to fetch for one patient, before any request is made.

`plan_crawl` combines three inputs, each a value:

- what the server says it supports (`CapabilitySummary` from its CapabilityStatement),
- what the patient allowed (the granted SMART scopes),
- how this vendor differs (`VendorQuirks`),

into a `CrawlPlan`: read `Patient/{id}` (`patient_read_url`: known before the server is asked
anything, so a crawl reads it beside the CapabilityStatement), and either one
`Patient/{id}/$everything` or one search per allowed and supported patient-compartment type
(fanned out per category where the vendor or the scopes require it), and the set of types that
may be hydrated by reference. Everything that is
left out is listed in `skipped` with the reason, for the export's report.

URLs are relative to the FHIR base; the crawler follows each search's `next` links.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from ehiconnect.crawler.quirks import VendorQuirks
from ehiconnect.crawler.scopes import GrantedScopes, parse_scopes
from ehiconnect.errors import FatalError
from ehiconnect.fhir.capability import CapabilitySummary
from ehiconnect.fhir.resource_types import (
    HYDRATE_BY_REFERENCE,
    PATIENT_READ_TYPE,
    PATIENT_SEARCHES,
    SearchSpec,
)

_QUERY_SAFE = "|:/,"


@dataclass(frozen=True)
class PlannedSearch:
    resource_type: str
    url: str
    """Relative search URL, e.g. `Observation?patient=123&category=laboratory&_count=100`."""


@dataclass(frozen=True)
class SkippedType:
    resource_type: str
    reason: str


@dataclass(frozen=True)
class CrawlPlan:
    patient_read_url: str
    everything_url: str | None
    searches: tuple[PlannedSearch, ...]
    hydrate_types: frozenset[str]
    skipped: tuple[SkippedType, ...]

    @property
    def uses_everything(self) -> bool:
        return self.everything_url is not None

    @property
    def searched_types(self) -> frozenset[str]:
        return frozenset(search.resource_type for search in self.searches)


def plan_crawl(
    capabilities: CapabilitySummary,
    granted_scopes: str | Iterable[str] | GrantedScopes,
    quirks: VendorQuirks,
    *,
    patient_id: str,
    page_size: int | None = None,
    search_specs: Sequence[SearchSpec] = PATIENT_SEARCHES,
) -> CrawlPlan:
    """The crawl for one patient. Raises `FatalError(scope_patient_missing)` without Patient read.

    `page_size` is the `_count` wanted; the vendor's `max_count` caps it. Without one, the
    plan asks for `max_count`, the largest page the vendor is known to accept: fewer pages make
    a shorter chain of dependent requests (each `next` link waits for the page before).
    """
    scopes = _scopes(granted_scopes)
    patient_path = patient_read_url(patient_id, scopes)
    count = quirks.max_count if page_size is None else max(1, min(page_size, quirks.max_count))
    hydrate = frozenset(t for t in HYDRATE_BY_REFERENCE if scopes.can_read(t))

    if capabilities.supports_patient_everything and quirks.trust_everything:
        return CrawlPlan(
            patient_read_url=patient_path,
            everything_url=f"{patient_path}/$everything?_count={count}",
            searches=(),
            hydrate_types=hydrate,
            skipped=(),
        )

    searches: list[PlannedSearch] = []
    skipped: list[SkippedType] = []
    for spec in search_specs:
        reason = _why_skip(spec.resource_type, capabilities, scopes, quirks)
        if reason is not None:
            skipped.append(SkippedType(spec.resource_type, reason))
            continue
        param = _patient_param(spec, capabilities, quirks)
        for extra in _fanout(spec.resource_type, scopes, quirks):
            query = [(param, patient_id), *extra, ("_count", str(count))]
            url = f"{spec.resource_type}?{urlencode(query, safe=_QUERY_SAFE)}"
            searches.append(PlannedSearch(spec.resource_type, url))
    return CrawlPlan(
        patient_read_url=patient_path,
        everything_url=None,
        searches=tuple(searches),
        hydrate_types=hydrate,
        skipped=tuple(skipped),
    )


def patient_read_url(patient_id: str, granted_scopes: str | Iterable[str] | GrantedScopes) -> str:
    """`Patient/{id}`, which needs nothing from the server: a crawl reads it while it reads the
    CapabilityStatement. Raises `FatalError(scope_patient_missing)` without Patient read."""
    if not patient_id or "/" in patient_id:
        # The id itself stays out of the message: it identifies a patient.
        raise ValueError("patient_id must be a bare FHIR id (no '/', not empty)")
    if not _scopes(granted_scopes).can_read(PATIENT_READ_TYPE):
        raise FatalError(
            "The granted scopes do not allow reading the Patient resource; the patient must "
            "connect again and approve access to their demographics",
            failure_reason="scope_patient_missing",
        )
    return f"Patient/{quote(patient_id, safe='')}"


def _scopes(granted: str | Iterable[str] | GrantedScopes) -> GrantedScopes:
    return granted if isinstance(granted, GrantedScopes) else parse_scopes(granted)


def _why_skip(
    resource_type: str,
    capabilities: CapabilitySummary,
    scopes: GrantedScopes,
    quirks: VendorQuirks,
) -> str | None:
    if resource_type in quirks.skip_types:
        return f"skipped for vendor profile {quirks.name!r}"
    if not scopes.can_search(resource_type):
        return "not allowed by the granted scopes"
    if not capabilities.supports_type(resource_type):
        return "not listed in the server's CapabilityStatement"
    if capabilities.supports_interaction(resource_type, "search-type") is False:
        return "the server's CapabilityStatement does not allow searching it"
    return None


def _patient_param(spec: SearchSpec, capabilities: CapabilitySummary, quirks: VendorQuirks) -> str:
    override = quirks.patient_param_overrides.get(spec.resource_type)
    if override:
        return override
    declared = capabilities.supports_search_param(spec.resource_type, spec.patient_param)
    if (
        declared is False
        and spec.alternative_param
        and capabilities.supports_search_param(spec.resource_type, spec.alternative_param)
    ):
        return spec.alternative_param
    return spec.patient_param


def _fanout(
    resource_type: str, scopes: GrantedScopes, quirks: VendorQuirks
) -> list[list[tuple[str, str]]]:
    """Extra parameters for each search of the type: one list per search to make."""
    restricted = scopes.search_restrictions(resource_type)
    if restricted:
        # Only what was granted: one search per allowed value (e.g. per category).
        return [[pair] for pair in restricted]
    fanout = quirks.search_fanout.get(resource_type)
    if fanout:
        param, values = fanout
        return [[(param, value)] for value in values]
    return [[]]
