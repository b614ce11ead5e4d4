from __future__ import annotations

import pytest

from ehiconnect.errors import InvalidRequest
from ehiconnect.ids import mode_of_key, new_private_key, new_public_id, new_task_id
from ehiconnect.orgs.validation import normalize_origin, normalize_redirect_uri


def test_redirect_uris_must_be_https_except_on_loopback() -> None:
    assert normalize_redirect_uri("https://app.example/cb") == "https://app.example/cb"
    assert normalize_redirect_uri("http://localhost:3000/cb") == "http://localhost:3000/cb"
    for bad in ("http://app.example/cb", "ftp://x/y", "/relative", "https://a.example/cb#frag"):
        with pytest.raises(InvalidRequest):
            normalize_redirect_uri(bad)


def test_origins_are_normalized_and_have_no_path() -> None:
    assert normalize_origin("https://App.Example:8443") == "https://app.example:8443"
    assert normalize_origin("https://app.example/") == "https://app.example"
    with pytest.raises(InvalidRequest):
        normalize_origin("https://app.example/page")


def test_key_formats_carry_their_mode() -> None:
    for mode in ("test", "live"):
        assert mode_of_key(new_public_id(mode)) == mode  # type: ignore[arg-type]
        assert mode_of_key(new_private_key(mode)) == mode  # type: ignore[arg-type]
    assert mode_of_key("public_prod_x") is None
    task_id = new_task_id()
    assert len(task_id) == 32
    assert task_id == task_id.lower()
    int(task_id, 16)


@pytest.mark.parametrize("origin", ["https://app.example:abc", "https://app.example:99999"])
def test_an_origin_with_an_invalid_port_is_a_client_error(origin: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid port"):
        normalize_origin(origin)
