"""Vendor profiles are looked up by platform type; granted scopes decide what may be read."""

from __future__ import annotations

import pytest

from ehiconnect.crawler.quirks import EPIC_LIKE, GENERIC, VendorQuirks, quirks_for
from ehiconnect.crawler.scopes import parse_scopes


@pytest.mark.parametrize(
    ("platform_type", "name"),
    [
        ("epic", "epic"),
        ("EPIC ", "epic"),
        ("cerner", "cerner"),
        ("oracle", "cerner"),
        ("sandbox", "sandbox"),
        ("athena", "generic"),
        (None, "generic"),
        ("", "generic"),
    ],
)
def test_quirks_lookup(platform_type: str | None, name: str) -> None:
    assert quirks_for(platform_type).name == name


def test_epic_profile_fans_observations_out_by_category_and_distrusts_everything() -> None:
    param, categories = EPIC_LIKE.search_fanout["Observation"]
    assert param == "category"
    assert {"laboratory", "vital-signs", "social-history"} <= set(categories)
    assert not EPIC_LIKE.trust_everything
    assert EPIC_LIKE.relative_attachment_urls


def test_profiles_are_immutable() -> None:
    with pytest.raises(TypeError):
        EPIC_LIKE.search_fanout["Condition"] = ("category", ())  # type: ignore[index]
    with pytest.raises(AttributeError):
        GENERIC.max_count = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="max_count"):
        VendorQuirks(name="bad", max_count=0)


@pytest.mark.parametrize(
    ("scopes", "resource_type", "read", "search"),
    [
        ("patient/*.read", "Observation", True, True),
        ("patient/*.*", "Condition", True, True),
        ("patient/Observation.read", "Observation", True, True),
        ("patient/Observation.read", "Condition", False, False),
        ("patient/*.rs", "Observation", True, True),
        ("patient/Observation.rs", "Observation", True, True),
        ("patient/Observation.r", "Observation", True, False),
        ("patient/Observation.s", "Observation", False, True),
        ("patient/Observation.cruds", "Observation", True, True),
        ("patient/Observation.cud", "Observation", False, False),
        ("patient/Observation.write", "Observation", False, False),
        ("patient/Observation.rs?category=laboratory", "Observation", True, True),
        ("user/Observation.read", "Observation", True, True),
        ("system/Observation.read", "Observation", False, False),
        ("launch/patient openid fhirUser offline_access", "Patient", False, False),
        ("patient/Observation.xyz", "Observation", False, False),
    ],
)
def test_scope_grants(scopes: str, resource_type: str, read: bool, search: bool) -> None:
    granted = parse_scopes(scopes)
    assert (granted.can_read(resource_type), granted.can_search(resource_type)) == (read, search)


def test_category_restricted_grants_are_kept_unless_an_unrestricted_grant_exists() -> None:
    restricted = parse_scopes(
        "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs"
    )
    assert restricted.search_restrictions("Observation") == (
        ("category", "laboratory"),
        ("category", "vital-signs"),
    )
    both = parse_scopes(["patient/Observation.rs?category=laboratory", "patient/*.rs"])
    assert both.search_restrictions("Observation") is None
