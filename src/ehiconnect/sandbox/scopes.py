"""SMART scopes, v1 (`patient/Observation.read`) and v2 (`patient/Observation.rs`).

Parsing and the access decision are pure functions, so the FHIR handlers only ask
`grants.allows(resource_type, "r")` and tests cover every form of scope without HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Interaction = Literal["r", "s"]
"""`r`: read a resource by id; `s`: search."""

_CLINICAL = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\."
    r"(?P<perm>read|write|\*|c?r?u?d?s?)(?:\?(?P<query>.+))?$"
)
NON_CLINICAL = frozenset(
    {"launch", "launch/patient", "openid", "fhirUser", "profile", "offline_access", "online_access"}
)
"""The non-clinical scopes SMART defines (recognised when parsing)."""
GRANTABLE_NON_CLINICAL: tuple[str, ...] = (
    "launch/patient",
    "openid",
    "fhirUser",
    "profile",
    "offline_access",
)
"""The non-clinical scopes the sandbox honours, so grants and advertises. `launch` (EHR launch)
and `online_access` (refresh tokens bound to the user's session) have no meaning for a
standalone launch without portal sessions: they are dropped from a request, never granted."""


@dataclass(frozen=True)
class ClinicalScope:
    context: str
    resource_type: str
    """A FHIR type or `*`."""
    interactions: frozenset[str]
    """Subset of `cruds`."""
    version: Literal[1, 2]
    query: str | None = None
    raw: str = ""


@dataclass(frozen=True)
class ScopeSet:
    """A parsed space-separated scope string."""

    clinical: tuple[ClinicalScope, ...] = ()
    other: frozenset[str] = frozenset()
    unknown: tuple[str, ...] = ()
    raw: tuple[str, ...] = field(default=())

    @property
    def offline(self) -> bool:
        return "offline_access" in self.other

    @property
    def wants_patient(self) -> bool:
        return "launch/patient" in self.other

    @property
    def openid(self) -> bool:
        return "openid" in self.other

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        """Whether a patient-context token may do `interaction` on `resource_type`.

        Only `patient/` scopes grant access (this is a standalone patient launch). A v2 scope
        with a query (`patient/Observation.rs?category=laboratory`) grants only part of a type;
        it is honoured for searches that carry the same restriction, see `allows_search`.
        """
        return any(
            s.context == "patient"
            and s.resource_type in ("*", resource_type)
            and interaction in s.interactions
            and s.query is None
            for s in self.clinical
        )

    def allows_search(self, resource_type: str, params: dict[str, str]) -> bool:
        """Whether a search of `resource_type` with `params` is within the granted scopes."""
        if self.allows(resource_type, "s"):
            return True
        for s in self.clinical:
            if (
                s.context == "patient"
                and s.resource_type in ("*", resource_type)
                and "s" in s.interactions
                and s.query is not None
                and _query_within(s.query, params)
            ):
                return True
        return False

    def to_string(self) -> str:
        return " ".join(self.raw)


def parse_scopes(scope: str | None) -> ScopeSet:
    """Parse a scope string; duplicates are dropped, order is kept."""
    clinical: list[ClinicalScope] = []
    other: set[str] = set()
    unknown: list[str] = []
    raw: list[str] = []
    for token in (scope or "").split():
        if token in raw:
            continue
        raw.append(token)
        parsed = parse_clinical_scope(token)
        if parsed is not None:
            clinical.append(parsed)
        elif token in NON_CLINICAL:
            other.add(token)
        else:
            unknown.append(token)
    return ScopeSet(tuple(clinical), frozenset(other), tuple(unknown), tuple(raw))


def parse_clinical_scope(token: str) -> ClinicalScope | None:
    match = _CLINICAL.match(token)
    if match is None:
        return None
    perm = match["perm"]
    version: Literal[1, 2]
    if perm in ("read", "write", "*"):
        if match["query"]:
            return None  # queries exist only in v2
        version = 1
        interactions = {"read": "rs", "write": "cud", "*": "cruds"}[perm]
    else:
        if not perm:
            return None
        version = 2
        interactions = perm
    return ClinicalScope(
        context=match["context"],
        resource_type=match["type"],
        interactions=frozenset(interactions),
        version=version,
        query=match["query"],
        raw=token,
    )


def narrow(requested: ScopeSet, kept: set[str]) -> ScopeSet:
    """The scopes of `requested` the patient left ticked (never more than was asked)."""
    return parse_scopes(" ".join(t for t in requested.raw if t in kept))


def expand_wildcard(scope: ClinicalScope, resource_types: Iterable[str]) -> list[str]:
    """`patient/*.rs` spelled out per type: `patient/Condition.rs`, `patient/Encounter.rs`, ..."""
    suffix = scope.raw.split(".", 1)[1]
    return [f"{scope.context}/{t}.{suffix}" for t in resource_types]


def consented(
    requested: ScopeSet,
    ticked_scopes: set[str],
    ticked_types: set[str],
    offered_types: Sequence[str],
) -> ScopeSet:
    """What a consent form grants.

    Specific scopes stay if ticked. A wildcard scope (`patient/*.rs`) was shown as one box per
    type in `offered_types`: with every box ticked it is granted as asked, otherwise it becomes
    one scope per ticked type, so the grant can be narrower than the request.
    """
    granted: list[str] = []
    for token in requested.raw:
        parsed = parse_clinical_scope(token)
        if parsed is not None and parsed.resource_type == "*":
            if set(offered_types) <= ticked_types:
                granted.append(token)
            else:
                granted += expand_wildcard(parsed, [t for t in offered_types if t in ticked_types])
        elif token in ticked_scopes:
            granted.append(token)
    return parse_scopes(" ".join(granted))


def _query_within(query: str, params: dict[str, str]) -> bool:
    """Every `name=value` of a scope query must be present with the same value in the search."""
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if params.get(name) != value:
            return False
    return True
