"""How a health system shows a stored resource: its quirks applied on the way out (pure).

The generator stores one canonical record; each system presents it its own way (attachment URL
style, `meta.lastUpdated` or not), so `expected_resources` is the same whatever the system.
"""

from __future__ import annotations

import copy
from typing import Any

from ehiconnect.sandbox.config import Quirks

Resource = dict[str, Any]


def present(resource: Resource, quirks: Quirks, fhir_base: str) -> Resource:
    """A copy of `resource` as the system serves it; the stored resource is not modified."""
    needs_urls = resource["resourceType"] == "DocumentReference" and quirks.attachment_urls == (
        "absolute"
    )
    needs_meta = not quirks.include_last_updated
    if not (needs_urls or needs_meta):
        return resource
    out = copy.deepcopy(resource)
    if needs_meta:
        out.get("meta", {}).pop("lastUpdated", None)
    if needs_urls:
        for content in out.get("content", []):
            attachment = content.get("attachment", {})
            url = attachment.get("url", "")
            if url.startswith("Binary/"):
                attachment["url"] = f"{fhir_base}/{url}"
    return out


def matches_category(resource: Resource, wanted: set[str]) -> bool:
    """Whether any `category` coding's code (or `system|code`) is in `wanted`."""
    for category in resource.get("category", []):
        for item in category.get("coding", []):
            code = item.get("code", "")
            if code in wanted or f"{item.get('system', '')}|{code}" in wanted:
                return True
    return False


def search_bundle(
    entries: list[Resource],
    total: int,
    fhir_base: str,
    self_url: str,
    next_url: str | None,
) -> Resource:
    """A `searchset` Bundle page."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{fhir_base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in entries
        ],
    }
