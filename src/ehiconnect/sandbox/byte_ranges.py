"""HTTP `Range: bytes=...` for attachment downloads (one range; RFC 9110 §14), pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int
    """Exclusive."""

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


class UnsatisfiableRangeError(ValueError):
    """The range lies outside the representation: answer 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range asked for, or None to send everything (no header, several ranges, junk)."""
    if not header:
        return None
    match = _SINGLE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise UnsatisfiableRangeError(header)
        return ByteRange(max(0, size - length), size)
    start = int(first)
    if start >= size:
        raise UnsatisfiableRangeError(header)
    stop = size if not last else min(int(last) + 1, size)
    if stop <= start:
        return None
    return ByteRange(start, stop)
