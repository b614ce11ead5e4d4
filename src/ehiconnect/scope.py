"""Whose objects a call may see: one organization in one mode. Services that read or change an
organization's objects take an `OrgScope` as a required argument, never an optional org id.

One rule for every kind of object (connections, exports, webhook endpoints and events):

- an object of another organization, or one that does not exist, is `404 not_found`: a caller
  cannot learn that another organization's id exists;
- an object of the caller's organization made in the other mode is `403 api_mode_mismatch`,
  naming the key to use: test keys never reach live objects and live keys never test ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from ehiconnect.errors import Forbidden, NotFound
from ehiconnect.ids import ApiMode


class Owned(Protocol):
    """Any stored object of an organization: a connection, an export task, a webhook endpoint."""

    @property
    def org_id(self) -> str: ...

    @property
    def api_mode(self) -> str: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


@dataclass(frozen=True)
class OrgScope:
    org_id: str
    api_mode: ApiMode

    def admit(
        self, *, kind: str, object_id: str, org_id: str | None, api_mode: str | None, hint: str
    ) -> None:
        """Raise unless an object owned by (`org_id`, `api_mode`) is in scope.

        `kind` names the object ("connection", "export"); `hint` tells the caller where valid
        ids come from. `org_id=None` means the object was not found.
        """
        if org_id is None or org_id != self.org_id:
            raise NotFound(f"you have no {kind} with id {object_id}; {hint}")
        if api_mode != self.api_mode:
            raise Forbidden(
                f"this {kind} was made in {api_mode} mode and your key is a {self.api_mode} key; "
                f"use your {api_mode} key",
                code="api_mode_mismatch",
            )

    def admitted(self, found: OwnedT | None, *, kind: str, object_id: str, hint: str) -> OwnedT:
        """`found` (what a lookup by `object_id` returned, or None) if this scope may see it;
        otherwise the 404 or 403 of `admit`."""
        self.admit(
            kind=kind,
            object_id=object_id,
            org_id=found.org_id if found is not None else None,
            api_mode=found.api_mode if found is not None else None,
            hint=hint,
        )
        assert found is not None  # admitted
        return found
