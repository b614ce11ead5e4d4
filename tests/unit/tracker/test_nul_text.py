"""NUL characters in JSON: found by path, or replaced in the JSON text and nothing else."""

from __future__ import annotations

import orjson
import pytest

from ehiconnect.tracker.nul_text import nul_path, replace_nul_escapes


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"external_id": "a\x00"}, "external_id"),
        ({"data": [{"x": "ok"}, {"brand_id": "\x00"}]}, "data[1].brand_id"),
        (["ok", "\x00"], "$[1]"),
        ("\x00", "$"),
        ({"key\x00": 1}, "key\ufffd"),
        ({"a": {"b": "c"}, "d": 1, "e": None}, None),
    ],
)
def test_nul_path_names_the_first_nul(value: object, where: str | None) -> None:
    assert nul_path(value) == where


def test_nul_path_walks_deeply_nested_json_without_recursion() -> None:
    deep = orjson.loads("[" * 1020 + '"\\u0000"' + "]" * 1020)

    assert nul_path(deep) == "$" + "[0]" * 1020


@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        (rb'{"a":"x\u0000y"}', {"a": "x\ufffdy"}, 1),
        (rb'{"a\u0000":"\u0000\u0000"}', {"a\ufffd": "\ufffd\ufffd"}, 3),
        (rb'{"a":"x\\u0000y"}', {"a": "x\\u0000y"}, 0),  # an escaped backslash, then text
        (rb'{"a":"x\\\u0000y"}', {"a": "x\\\ufffdy"}, 1),  # a backslash, then a NUL
        (rb'{"a":"plain"}', {"a": "plain"}, 0),
    ],
)
def test_replace_nul_escapes_changes_only_nul_characters(
    text: bytes, expected: object, count: int
) -> None:
    replaced, n = replace_nul_escapes(text)

    assert orjson.loads(replaced) == expected
    assert n == count
