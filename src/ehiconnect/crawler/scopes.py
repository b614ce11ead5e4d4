"""What a granted SMART scope string lets the crawler read.

Understood forms (SMART App Launch 1.0 and 2.x), for the `patient/` and `user/` contexts:

    v1  patient/*.read   patient/Observation.read   patient/*.*   patient/Observation.*
    v2  patient/*.rs     patient/Observation.rs     patient/Observation.cruds
        patient/Observation.rs?category=laboratory   (granted for the type; the categories are
        kept so the planner can search only what was allowed)

In v2, `r` allows reading by id and `s` allows searching; v1 `read` and `*` allow both.
`system/` scopes, `launch/patient`, `openid` and the like grant no resource access here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

_SCOPE = re.compile(
    r"^(?P<context>patient|user)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>[a-z*]+)(?:\?(?P<query>.*))?$"
)
_V2_LETTERS = frozenset("cruds")


@dataclass(frozen=True)
class Grant:
    resource_type: str  # "*" for every type
    read: bool
    search: bool
    restrictions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GrantedScopes:
    grants: tuple[Grant, ...] = field(default=())

    def can_search(self, resource_type: str) -> bool:
        return any(g.search for g in self._for(resource_type))

    def can_read(self, resource_type: str) -> bool:
        return any(g.read for g in self._for(resource_type))

    def search_restrictions(self, resource_type: str) -> tuple[tuple[str, str], ...] | None:
        """Parameter values every search of this type must carry, or None for unrestricted.

        Only when every search grant for the type is restricted; one unrestricted grant wins.
        """
        grants = [g for g in self._for(resource_type) if g.search]
        if not grants or any(not g.restrictions for g in grants):
            return None
        merged: list[tuple[str, str]] = []
        for grant in grants:
            merged.extend(pair for pair in grant.restrictions if pair not in merged)
        return tuple(merged)

    def _for(self, resource_type: str) -> list[Grant]:
        return [g for g in self.grants if g.resource_type in ("*", resource_type)]


def parse_scopes(scopes: str | Iterable[str]) -> GrantedScopes:
    """Parse a space-separated scope string (as in a token response) or a list of scopes."""
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    grants = [grant for grant in map(_parse_one, items) if grant is not None]
    return GrantedScopes(tuple(grants))


def _parse_one(scope: str) -> Grant | None:
    match = _SCOPE.match(scope.strip())
    if match is None:
        return None
    permission = match["perm"]
    query = match["query"]
    restrictions = tuple(parse_qsl(query)) if query else ()
    if permission in ("read", "*"):
        return Grant(match["type"], read=True, search=True, restrictions=restrictions)
    if permission == "write":
        return None
    letters = set(permission)
    if not letters <= _V2_LETTERS:
        return None
    if "r" not in letters and "s" not in letters:
        return None
    return Grant(match["type"], "r" in letters, "s" in letters, restrictions)
