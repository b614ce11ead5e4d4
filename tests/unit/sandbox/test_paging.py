from __future__ import annotations

import pytest

from ehiconnect.sandbox.paging import (
    PageTokenError,
    decode_page_token,
    encode_page_token,
    page_size,
    plan_page,
    search_fingerprint,
)


def test_a_page_token_round_trips_for_the_same_search() -> None:
    fingerprint = search_fingerprint("Observation", {"patient": "p1", "category": "laboratory"})
    assert decode_page_token(encode_page_token(120, fingerprint), fingerprint) == 120


def test_paging_parameters_do_not_change_the_fingerprint() -> None:
    plain = search_fingerprint("Observation", {"patient": "p1"})
    assert plain == search_fingerprint("Observation", {"patient": "p1", "_count": "5"})
    assert plain == search_fingerprint("Observation", {"_page_token": "x", "patient": "p1"})


def test_a_token_from_another_search_is_refused() -> None:
    token = encode_page_token(10, search_fingerprint("Observation", {"patient": "p1"}))
    with pytest.raises(PageTokenError, match="different search"):
        decode_page_token(token, search_fingerprint("Observation", {"patient": "p2"}))


@pytest.mark.parametrize("token", ["", "%%%", "eyJvIjotMSwiZiI6ImFiYyJ9", "bm90IGpzb24"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(PageTokenError):
        decode_page_token(token, "abc")


def test_page_size_defaults_clamps_and_rejects_junk() -> None:
    assert page_size(None, 50, 200) == 50
    assert page_size("500", 50, 200) == 200
    assert page_size("0", 50, 200) == 1
    assert page_size(None, 50, 10) == 10
    with pytest.raises(ValueError, match="invalid literal"):
        page_size("ten", 50, 200)


def test_pages_cover_every_item_once() -> None:
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page, offset = plan_page(23, offset, 10)
        seen.extend(range(page.offset, page.offset + page.size))
    assert seen == list(range(23))


def test_the_last_page_has_no_next() -> None:
    page, next_offset = plan_page(20, 10, 10)
    assert (page.offset, page.size, next_offset) == (10, 10, None)
