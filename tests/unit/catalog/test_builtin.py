"""The catalog's registration point for built-in catalogs: named in settings, never imported."""

from __future__ import annotations

import pytest

from ehiconnect.catalog.builtin import BuiltinSourceError, load_builtin_source
from ehiconnect.settings import Settings


def test_the_default_registration_lists_the_sandbox_systems_at_the_given_url() -> None:
    sources = Settings().catalog.builtin_sources
    assert list(sources) == ["sandbox"]
    data = load_builtin_source(sources["sandbox"])("http://127.0.0.1:8599/")
    data.check()
    assert len(data.brands) == len(data.portals) == len(data.endpoints) == 3
    assert all(e.url.startswith("http://127.0.0.1:8599/") for e in data.endpoints)
    assert {e.client_auth_method for e in data.endpoints} == {"none"}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_function_named", "should read 'package.module:function'"),
        ("ehiconnect.no_such_module:data", "ehiconnect.no_such_module cannot be imported"),
        ("ehiconnect.catalog.data:NO_SUCH_NAME", "not a function of ehiconnect.catalog.data"),
        ("ehiconnect.catalog.builtin:__doc__", "not a function of ehiconnect.catalog.builtin"),
    ],
)
def test_an_unusable_entry_says_which_and_why(target: str, message: str) -> None:
    with pytest.raises(BuiltinSourceError, match=message):
        load_builtin_source(target)
