"""Stable paging of search results: opaque page tokens and page-size rules.

A token carries the offset and a fingerprint of the search it belongs to, so a token pasted onto
a different search is refused instead of silently returning the wrong page. The data behind a
persona never changes, so an offset is a stable position.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass


class PageTokenError(ValueError):
    """The `_page_token` is malformed or belongs to another search."""


@dataclass(frozen=True)
class Page:
    offset: int
    size: int


def search_fingerprint(path: str, params: dict[str, str]) -> str:
    """A short hash of the search (path and parameters, without paging parameters)."""
    stable = sorted((k, v) for k, v in params.items() if k not in ("_page_token", "_count"))
    text = path + "?" + "&".join(f"{k}={v}" for k, v in stable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_page_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_page_token(token: str, fingerprint: str) -> int:
    """The offset in `token`; raises `PageTokenError` if it is not for this search."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = data["o"]
        token_fingerprint = data["f"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PageTokenError("_page_token is malformed; restart the search from page 1") from exc
    if not isinstance(offset, int) or offset < 0:
        raise PageTokenError("_page_token has a bad offset; restart the search from page 1")
    if token_fingerprint != fingerprint:
        raise PageTokenError(
            "_page_token belongs to a different search; follow the next link unchanged"
        )
    return offset


def page_size(requested: str | None, default: int, maximum: int) -> int:
    """`_count` clamped to [1, maximum], `default` when absent; ValueError if not a number."""
    if requested is None or requested == "":
        return min(default, maximum)
    count = int(requested)
    return max(1, min(count, maximum))


def plan_page(total: int, offset: int, size: int) -> tuple[Page, int | None]:
    """The page to serve and the offset of the next one (`None` on the last page)."""
    offset = min(offset, total)
    end = min(offset + size, total)
    return Page(offset, end - offset), (end if end < total else None)
