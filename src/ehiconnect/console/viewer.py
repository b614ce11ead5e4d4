"""Who is looking: an operator (every organization) or a customer (one), in one mode.

Every console query takes a `Viewer` and filters with `org_clause`: a customer's pages and object
lookups never leave their organization, and another organization's object answers like a missing
one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ehiconnect.consolekit.models import ROLE_OPERATOR
from ehiconnect.consolekit.sessions import SignedIn


@dataclass(frozen=True)
class Viewer:
    org_id: str | None
    """None for an operator: every organization."""
    api_mode: str

    @property
    def operator(self) -> bool:
        return self.org_id is None

    @classmethod
    def of(cls, who: SignedIn) -> Viewer:
        org_id = None if who.user.role == ROLE_OPERATOR else who.user.org_id
        if (
            who.user.role != ROLE_OPERATOR and org_id is None
        ):  # a customer without an org sees nothing
            org_id = "-"
        return cls(org_id=org_id, api_mode=who.session.api_mode)

    def org_clause(self, column: str, params: dict[str, Any]) -> str:
        """` AND <column> = :org_id` for a customer (adding the parameter), '' for an operator."""
        if self.org_id is None:
            return ""
        params["org_id"] = self.org_id
        return f" AND {column} = :org_id"

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"mode": self.api_mode, **extra}
