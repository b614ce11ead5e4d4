"""Range and conditional requests for downloads (RFC 9110 §13, §14): the pure planner."""

from __future__ import annotations

import datetime as dt

import pytest

from ehiconnect.api.ranges import (
    DownloadPlan,
    Representation,
    format_http_date,
    parse_entity_tags,
    parse_http_date,
    plan_download,
)

MODIFIED = dt.datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=dt.UTC)
FILE = Representation(size=1000, etag="abc123", last_modified=MODIFIED)
DATE = "Sun, 01 Mar 2026 12:30:15 GMT"


def plan(method: str = "GET", **headers: str) -> DownloadPlan:
    return plan_download(method, {k.replace("_", "-"): v for k, v in headers.items()}, FILE)


def test_http_dates_are_imf_fixdate_and_all_three_forms_are_read() -> None:
    assert format_http_date(MODIFIED) == DATE
    east = dt.timezone(dt.timedelta(hours=2))
    assert format_http_date(MODIFIED.astimezone(east)) == DATE
    with pytest.raises(ValueError, match="aware"):
        format_http_date(dt.datetime(2026, 3, 1))
    for text in (DATE, "Sunday, 01-Mar-26 12:30:15 GMT", "Sun Mar  1 12:30:15 2026"):
        assert parse_http_date(text) == MODIFIED.replace(microsecond=0), text
    assert parse_http_date("yesterday") is None
    assert parse_http_date("") is None


def test_entity_tag_lists() -> None:
    assert parse_entity_tags('"a", W/"b" ,"c"') == [(False, "a"), (True, "b"), (False, "c")]
    assert parse_entity_tags('""') == [(False, "")]
    assert parse_entity_tags("abc") is None
    assert parse_entity_tags('"a" "b"') is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", DownloadPlan(206, 0, 100)),
        ("bytes=900-", DownloadPlan(206, 900, 1000)),
        ("bytes=900-5000", DownloadPlan(206, 900, 1000)),
        ("bytes=-100", DownloadPlan(206, 900, 1000)),
        ("bytes=-5000", DownloadPlan(206, 0, 1000)),
        ("BYTES = 0-0", DownloadPlan(206, 0, 1)),
        ("bytes=999-999", DownloadPlan(206, 999, 1000)),
        # unsatisfiable or malformed: 416
        ("bytes=1000-", DownloadPlan(416)),
        ("bytes=-0", DownloadPlan(416)),
        ("bytes=5-1", DownloadPlan(416)),
        ("bytes=abc", DownloadPlan(416)),
        ("bytes=-", DownloadPlan(416)),
        ("bytes=1000-,2000-", DownloadPlan(416)),
        # several ranges: the whole file; an unknown unit is ignored
        ("bytes=0-9,20-29", DownloadPlan(200, 0, 1000)),
        ("bytes=0-9,5000-", DownloadPlan(200, 0, 1000)),
        ("items=0-9", DownloadPlan(200, 0, 1000)),
        ("bytes=" + ",".join(["0-0"] * 101), DownloadPlan(200, 0, 1000)),
    ],
)
def test_ranges(header: str, expected: DownloadPlan) -> None:
    assert plan(range=header) == expected
    assert plan("HEAD", range=header) == expected


def test_no_range_is_the_whole_file_and_an_empty_file_has_no_ranges() -> None:
    assert plan() == DownloadPlan(200, 0, 1000)
    empty = Representation(size=0, etag="e")
    assert plan_download("GET", {"range": "bytes=0-"}, empty) == DownloadPlan(200, 0, 0)
    assert plan_download("GET", {"range": "bytes=-5"}, empty) == DownloadPlan(200, 0, 0)


@pytest.mark.parametrize(
    ("if_range", "honoured"),
    [
        ('"abc123"', True),
        ('"0000"', False),  # a stale tag: the file changed, send all of it
        ('W/"abc123"', False),  # weak tags never match in If-Range
        ('"abc123", "x"', False),
        ("abc123", False),
        (DATE, True),
        ("Sunday, 01-Mar-26 12:30:15 GMT", True),
        ("Sun, 01 Mar 2026 12:30:16 GMT", False),  # exact match only, not "not modified since"
        ("Sun, 01 Mar 2026 12:30:14 GMT", False),
        ("not a date", False),
    ],
)
def test_if_range(if_range: str, honoured: bool) -> None:
    expected = DownloadPlan(206, 500, 1000) if honoured else DownloadPlan(200, 0, 1000)
    assert plan(range="bytes=500-", if_range=if_range) == expected
    assert plan(if_range=if_range) == DownloadPlan(200, 0, 1000)  # without Range: ignored


def test_if_range_with_a_date_needs_a_last_modified() -> None:
    no_date = Representation(size=10, etag="t")
    headers = {"range": "bytes=5-", "if-range": DATE}
    assert plan_download("GET", headers, no_date) == DownloadPlan(200, 0, 10)


def test_if_none_match_and_if_modified_since_answer_304() -> None:
    assert plan(if_none_match='"abc123"').status == 304
    assert plan("HEAD", if_none_match='W/"abc123"').status == 304  # weak comparison
    assert plan(if_none_match='"x", "abc123"').status == 304
    assert plan(if_none_match="*").status == 304
    assert plan(if_none_match='"x"').status == 200
    assert plan(if_none_match='"x"', range="bytes=0-0").status == 206
    assert plan(if_modified_since=DATE).status == 304
    assert plan(if_modified_since="Sun, 01 Mar 2026 12:30:14 GMT").status == 200
    assert plan(if_modified_since="garbage").status == 200
    # If-None-Match wins over If-Modified-Since (§13.2.2)
    assert plan(if_none_match='"x"', if_modified_since=DATE).status == 200


def test_if_match_and_if_unmodified_since_answer_412() -> None:
    assert plan(if_match='"abc123"').status == 200
    assert plan(if_match="*").status == 200
    assert plan(if_match='W/"abc123"').status == 412  # strong comparison
    assert plan(if_match='"other"', range="bytes=0-0").status == 412
    assert plan(if_unmodified_since=DATE).status == 200
    assert plan(if_unmodified_since="Sun, 01 Mar 2026 12:30:14 GMT").status == 412
    # If-Match present: If-Unmodified-Since is not evaluated
    assert plan(if_match='"abc123"', if_unmodified_since="Sun, 01 Mar 2026 12:00:00 GMT") == (
        DownloadPlan(200, 0, 1000)
    )
