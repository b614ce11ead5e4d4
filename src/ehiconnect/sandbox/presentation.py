"""How a health system shows a stored resource: its quirks applied on the way out (pure).

The generator stores one canonical record; each system presents it its own way (attachment URL
style, `meta.lastUpdated` or not), so `expected_resources` is the same whatever the system.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
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


class PresentedViews:
    """`present` of each resource served, made once per record, presentation and base URL.

    A record's resources never change, so what a system shows of one is the same on every page
    and every crawl; at a system that hides `meta.lastUpdated` (cedar), `present` copies every
    resource it serves. The copies of the last `max_views` (record, presentation, base) are
    kept; treat them as read-only, like the record.
    """

    def __init__(self, max_views: int = 16) -> None:
        self._max_views = max_views
        self._views: OrderedDict[tuple[int, bool, str, str], tuple[object, dict[int, Resource]]]
        self._views = OrderedDict()
        self._lock = threading.Lock()

    def present(
        self, owner: object, resource: Resource, quirks: Quirks, fhir_base: str
    ) -> Resource:
        """`present(resource, quirks, fhir_base)`; `owner` is the record holding `resource`."""
        key = (id(owner), quirks.include_last_updated, quirks.attachment_urls, fhir_base)
        with self._lock:
            view = self._views.get(key)
            if view is None or view[0] is not owner:
                view = (owner, {})
                self._views[key] = view
                while len(self._views) > self._max_views:
                    self._views.popitem(last=False)
            else:
                self._views.move_to_end(key)
        # The owner is held by the view, so the ids of its resources stay theirs.
        shown = view[1].get(id(resource))
        if shown is None:
            shown = present(resource, quirks, fhir_base)
            view[1][id(resource)] = shown
        return shown


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
