"""The one tenant rule (ehiconnect/scope.py): another organization's object looks like none at
all; the caller's own object in the other mode names the key to use."""

from __future__ import annotations

import pytest

from ehiconnect.errors import Forbidden, NotFound
from ehiconnect.scope import OrgScope

SCOPE = OrgScope(org_id="org-a", api_mode="test")
HINT = "use the task_id from POST /bridge/fhir/ehi-export"


def test_the_callers_own_object_in_its_mode_is_admitted() -> None:
    SCOPE.admit(kind="export", object_id="t1", org_id="org-a", api_mode="test", hint=HINT)


@pytest.mark.parametrize("owner", ["org-b", None])
def test_another_organizations_object_answers_like_a_missing_one(owner: str | None) -> None:
    with pytest.raises(NotFound) as refused:
        SCOPE.admit(kind="export", object_id="t1", org_id=owner, api_mode="test", hint=HINT)
    assert str(refused.value) == f"you have no export with id t1; {HINT}"


def test_another_organizations_object_in_the_other_mode_is_still_404_not_403() -> None:
    with pytest.raises(NotFound):
        SCOPE.admit(kind="export", object_id="t1", org_id="org-b", api_mode="live", hint=HINT)


def test_the_callers_object_in_the_other_mode_names_the_key_to_use() -> None:
    with pytest.raises(Forbidden) as refused:
        SCOPE.admit(kind="connection", object_id="c1", org_id="org-a", api_mode="live", hint=HINT)
    assert refused.value.code == "api_mode_mismatch"
    assert "made in live mode" in str(refused.value)
    assert "use your live key" in str(refused.value)


class Row:
    def __init__(self, org_id: str, api_mode: str) -> None:
        self.org_id, self.api_mode = org_id, api_mode


def test_a_lookup_result_in_scope_is_handed_back_and_a_missing_one_is_404() -> None:
    row = Row("org-a", "test")
    assert SCOPE.admitted(row, kind="export", object_id="t1", hint=HINT) is row
    with pytest.raises(NotFound):
        SCOPE.admitted(None, kind="export", object_id="t1", hint=HINT)
    with pytest.raises(Forbidden):
        SCOPE.admitted(Row("org-a", "live"), kind="export", object_id="t1", hint=HINT)
