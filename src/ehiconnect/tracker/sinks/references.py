"""Consistent id rewriting for a third-party FHIR server (pure).

Some servers refuse client-assigned ids of certain shapes (HAPI rejects all-numeric ids by
default; ids longer than 64 characters or with other characters are invalid FHIR). `IdMapper`
maps each source `Type/id` to a valid target id the same way every time, with no table to keep:
the id itself when allowed, else a prefix, else a hash. Every relative reference
(`Patient/123`, `Binary/9` in an attachment URL, with or without `/_history/n`) is rewritten with
the same mapping, so the resources still point at each other on the target server.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

_VALID_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]+)?$")


def relative_target(value: str) -> tuple[str, str] | None:
    """`(Type, id)` of a relative reference (`Patient/1`, `Binary/9/_history/2`), else None."""
    match = _RELATIVE.match(value)
    return (match.group(1), match.group(2)) if match else None


def is_reference(key: str, value: object) -> bool:
    """Whether a JSON member holds a reference: `reference`, or an attachment `url` to Binary."""
    if not isinstance(value, str):
        return False
    return key == "reference" or (key == "url" and value.startswith("Binary/"))


@dataclass(frozen=True)
class IdMapper:
    """`prefix` is added to ids that are all digits (or to every id when `prefix_all`)."""

    prefix: str = "ehi-"
    prefix_all: bool = False

    def target_id(self, resource_type: str, source_id: str) -> str:
        candidate = source_id
        if self.prefix_all or source_id.isdigit():
            candidate = self.prefix + source_id
        if _VALID_ID.match(candidate):
            return candidate
        digest = hashlib.sha256(f"{resource_type}/{source_id}".encode()).hexdigest()[:40]
        return f"{self.prefix}{digest}"

    def rewrite_reference(self, value: str) -> str:
        target = relative_target(value)
        if target is None:
            return value  # absolute, contained (#x), urn: left as they are
        kind, rid = target
        # The target keeps its own history; pointing at one source version would dangle.
        return f"{kind}/{self.target_id(kind, rid)}"


def rewrite_resource(resource: dict[str, Any], mapper: IdMapper) -> dict[str, Any]:
    """A copy of the resource with its id and every relative reference mapped."""
    rewritten = _walk(resource, mapper)
    assert isinstance(rewritten, dict)
    kind, rid = resource.get("resourceType"), resource.get("id")
    if isinstance(kind, str) and isinstance(rid, str):
        rewritten["id"] = mapper.target_id(kind, rid)
    return rewritten


def _walk(node: Any, mapper: IdMapper) -> Any:
    if isinstance(node, list):
        return [_walk(item, mapper) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: mapper.rewrite_reference(value) if is_reference(key, value) else _walk(value, mapper)
        for key, value in node.items()
    }
