"""Conditional and range requests for file downloads (RFC 9110 §13 and §14), as pure functions.

    plan = plan_download("GET", request.headers, Representation(size, etag, last_modified))
    plan.status   # 200, 206, 304, 412 or 416
    plan.start, plan.end   # the bytes to send, `end` exclusive (like a slice)

Preconditions are evaluated in the order of RFC 9110 §13.2.2: If-Match, If-Unmodified-Since,
If-None-Match, If-Modified-Since, then If-Range. A Range is honoured only when If-Range (if sent)
matches: a strong comparison for an entity tag, an exact match with Last-Modified for an
HTTP-date; anything else, including a weak tag or an unreadable date, means the whole file (200),
so a client resuming a download never splices bytes of two different files.

Only one range per request is served; several ranges are answered with the whole file (200), which
RFC 9110 §14.2 allows. A range unit other than `bytes` is ignored (200), as §14.2 requires. A
`bytes` range that is malformed or starts past the end is refused with 416 (§15.5.17), and the
response carries `Content-Range: bytes */<size>`.

HEAD is planned exactly like GET (the caller then sends no content), so a client can learn a
range's `Content-Range` and `Content-Length` before fetching it. (§14.2 defines range handling for
GET; HEAD answers with the header fields GET would have, §9.3.2.)

This is hand-written rather than taken from a library: Starlette's `FileResponse` implements the
same rules but only for a file on local disk, while export files stream from a `BlobStore`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3)
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')
_BYTE_RANGE = re.compile(r"^(\d*)-(\d*)$")
_MAX_RANGE_SPECS = 100  # beyond this a Range header is not worth parsing: the whole file is sent
_UNSATISFIABLE = (0, 0)


@dataclass(frozen=True)
class Representation:
    """What is known about the file before its bytes are read."""

    size: int
    etag: str  # the opaque tag, without quotes; a strong validator
    last_modified: dt.datetime | None = None


@dataclass(frozen=True)
class DownloadPlan:
    status: int
    start: int = 0
    end: int = 0  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start


def format_http_date(when: dt.datetime) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`."""
    if when.tzinfo is None:
        raise ValueError("an HTTP-date needs an aware datetime")
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)


def parse_http_date(text: str) -> dt.datetime | None:
    """An HTTP-date in any of the three forms recipients must accept, or None when unreadable."""
    try:
        when = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime() form: always UTC
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def parse_entity_tags(text: str) -> list[tuple[bool, str]] | None:
    """`(weak, opaque)` for each tag of a list such as If-None-Match; None when malformed."""
    tags: list[tuple[bool, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _ENTITY_TAG.match(text, position)
        if match is None:
            return None
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    return tags


def plan_download(
    method: str, headers: Mapping[str, str], representation: Representation
) -> DownloadPlan:
    """What to answer to a GET or HEAD of `representation`, from the request's header fields.

    `headers` is looked up with lower-case names (Starlette's `Headers` is case-insensitive).
    """
    whole = DownloadPlan(200, 0, representation.size)
    refused = _failed_precondition(method, headers, representation)
    if refused is not None:
        return DownloadPlan(refused)
    range_header = headers.get("range")
    if range_header is None or method.upper() not in ("GET", "HEAD"):
        return whole
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range_holds(if_range, representation):
        return whole
    return _plan_range(range_header, representation.size)


def _failed_precondition(
    method: str, headers: Mapping[str, str], rep: Representation
) -> int | None:
    """412 or 304 when a precondition fails (RFC 9110 §13.2.2), else None."""
    safe = method.upper() in ("GET", "HEAD")
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _matches(if_match, rep.etag, weak=False):
            return 412
    else:
        since = _date_header(headers, "if-unmodified-since")
        if since is not None and rep.last_modified and _seconds(rep.last_modified) > since:
            return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, rep.etag, weak=True):
            return 304 if safe else 412
    elif safe:
        since = _date_header(headers, "if-modified-since")
        if since is not None and rep.last_modified and _seconds(rep.last_modified) <= since:
            return 304
    return None


def _matches(field: str, etag: str, *, weak: bool) -> bool:
    """Whether a list of entity tags (or `*`) matches `etag`; a malformed list matches nothing."""
    if field.strip() == "*":
        return True
    tags = parse_entity_tags(field) or []
    return any(opaque == etag and (weak or not is_weak) for is_weak, opaque in tags)


def _if_range_holds(field: str, rep: Representation) -> bool:
    field = field.strip()
    if field.startswith(('"', "W/")):
        tags = parse_entity_tags(field)
        return tags is not None and len(tags) == 1 and tags[0] == (False, rep.etag)
    when = parse_http_date(field)
    return (
        when is not None and rep.last_modified is not None and _seconds(rep.last_modified) == when
    )


def _plan_range(field: str, size: int) -> DownloadPlan:
    unit, _, specs = field.partition("=")
    if unit.strip().lower() != "bytes":
        return DownloadPlan(200, 0, size)  # a unit we do not know: MUST be ignored
    parts = specs.split(",")
    if len(parts) > _MAX_RANGE_SPECS:
        return DownloadPlan(200, 0, size)
    ranges = [_byte_range(part.strip(), size) for part in parts]
    if any(r is None for r in ranges):
        return DownloadPlan(416)  # malformed
    if size == 0:
        return DownloadPlan(200, 0, 0)  # nothing to slice; only the empty whole exists
    satisfiable = [r for r in ranges if r is not None and r != _UNSATISFIABLE]
    if not satisfiable:
        return DownloadPlan(416)
    if len(ranges) > 1:
        return DownloadPlan(200, 0, size)
    start, end = satisfiable[0]
    return DownloadPlan(206, start, end)


def _byte_range(spec: str, size: int) -> tuple[int, int] | None:
    """`[start, end)` for one range-spec, `_UNSATISFIABLE`, or None when malformed."""
    match = _BYTE_RANGE.match(spec)
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix-range: the last N bytes
        length = int(last)
        return (max(size - length, 0), size) if length > 0 and size > 0 else _UNSATISFIABLE
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return _UNSATISFIABLE
    end = min(int(last) + 1, size) if last else size
    return start, end


def _date_header(headers: Mapping[str, str], name: str) -> dt.datetime | None:
    value = headers.get(name)
    return parse_http_date(value) if value is not None else None


def _seconds(when: dt.datetime) -> dt.datetime:
    """HTTP-dates have one-second resolution: compare at that resolution."""
    return when.astimezone(dt.UTC).replace(microsecond=0)
