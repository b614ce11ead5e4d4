"""How vendors' FHIR APIs differ from the spec's happy path, as data.

A `VendorQuirks` profile is picked by a connection's `platform_type` (`quirks_for`). Unknown
platforms get `GENERIC`, which assumes a conformant US Core server. The values for named vendors
describe behaviour seen in their public documentation and sandboxes; each is a setting the planner
and crawler obey, not code paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ehiconnect.fhir.resource_types import (
    CONDITION_CATEGORIES,
    DOCUMENT_REFERENCE_CATEGORIES,
    OBSERVATION_CATEGORIES,
)


def _frozen_map(
    values: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
) -> Mapping[str, tuple[str, tuple[str, ...]]]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class VendorQuirks:
    name: str
    max_count: int = 100
    """Largest `_count` the server honours; the planner never asks for more."""
    search_fanout: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=_frozen_map)
    """Types that must be searched once per value of a parameter: type -> (param, values)."""
    trust_everything: bool = True
    """Use `Patient/$everything` when advertised (some servers advertise but truncate it)."""
    relative_attachment_urls: bool = False
    """Attachment URLs are relative to the FHIR base (e.g. `Binary/abc`) rather than absolute."""
    skip_types: frozenset[str] = frozenset()
    """Types never searched, even when declared (known to fail or to duplicate others)."""
    patient_param_overrides: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Type -> search parameter naming the patient, when the vendor differs from US Core."""

    def __post_init__(self) -> None:
        if self.max_count < 1:
            raise ValueError(f"quirks {self.name!r}: max_count must be at least 1")
        object.__setattr__(self, "search_fanout", _frozen_map(self.search_fanout))
        object.__setattr__(
            self, "patient_param_overrides", MappingProxyType(dict(self.patient_param_overrides))
        )


GENERIC = VendorQuirks(name="generic", max_count=200)

EPIC_LIKE = VendorQuirks(
    name="epic",
    max_count=100,
    search_fanout={
        "Observation": ("category", OBSERVATION_CATEGORIES),
        "Condition": ("category", CONDITION_CATEGORIES),
        "DocumentReference": ("category", DOCUMENT_REFERENCE_CATEGORIES),
    },
    trust_everything=False,
    relative_attachment_urls=True,
)

CERNER_LIKE = VendorQuirks(
    name="cerner",
    max_count=100,
    trust_everything=False,
    relative_attachment_urls=False,
)

SANDBOX = replace(GENERIC, name="sandbox", max_count=500)

PROFILES: Mapping[str, VendorQuirks] = MappingProxyType(
    {
        "generic": GENERIC,
        "epic": EPIC_LIKE,
        "cerner": CERNER_LIKE,
        "oracle": CERNER_LIKE,
        "sandbox": SANDBOX,
    }
)


def quirks_for(platform_type: str | None) -> VendorQuirks:
    """The profile for a connection's `platform_type` (case-insensitive); GENERIC when unknown."""
    if not platform_type:
        return GENERIC
    return PROFILES.get(platform_type.strip().lower(), GENERIC)
