from __future__ import annotations

import pytest

from ehiconnect.sandbox.byte_ranges import ByteRange, UnsatisfiableRangeError, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 100)),
        ("bytes=100-", ByteRange(100, 1000)),
        ("bytes=-10", ByteRange(990, 1000)),
        ("bytes=-5000", ByteRange(0, 1000)),
        ("bytes=900-5000", ByteRange(900, 1000)),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=5-1", None),
    ],
)
def test_single_ranges_are_understood_and_others_mean_everything(
    header: str | None, expected: ByteRange | None
) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=5000-6000"])
def test_ranges_past_the_end_are_unsatisfiable(header: str) -> None:
    with pytest.raises(UnsatisfiableRangeError):
        parse_range(header, 1000)


def test_content_range_is_inclusive() -> None:
    assert ByteRange(10, 20).content_range(100) == "bytes 10-19/100"
