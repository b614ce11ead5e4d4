"""Split NDJSON into ordinary lines and large `Binary` payloads, decoded, streaming (pure).

An export carries attachments inline: a 3 GB scan is one NDJSON line of 4 GB of base64. No sink
can take that as one JSON value (PostgreSQL's jsonb stops at 255 MB; parsing it whole costs
three times its size in memory), so before ingesting, the tracker lifts the payload of every line
longer than `threshold` out of the line: the bytes go to storage as a file, the line keeps the
rest of the resource. `BinaryLifter` is the state machine that does it without ever holding more
than `threshold` bytes of a line:

- `feed(chunk)` returns events in order: `Line` (a whole line of at most `threshold` bytes, or a
  longer one that has no liftable payload), `LiftStart`, `LiftData` (decoded bytes),
  `LiftEnd` (the resource without its `data`, parsed);
- a line is liftable when, within its first `threshold` bytes, the top-level member `"data"` of
  the JSON object opens a string that does not close there (the shape of every Binary the
  platform writes, wherever `data` comes among the members);
- the payload must be base64 (`\\/` escapes and escaped or literal line breaks are accepted, as
  some encoders emit them); anything else raises `LiftError` naming the line.

Nothing here quotes a line's content in an error: it may be health data.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

import orjson
import pybase64

MAX_TAIL_BYTES = 1024 * 1024  # what may follow the payload on its line (the other members)
_WHITESPACE = b" \t\r\n"


class LiftError(ValueError):
    """A line that looked like an inline payload is not valid; the message says which line."""


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number in the file
    data: bytes  # without the newline


@dataclass(frozen=True)
class LiftStart:
    number: int


@dataclass(frozen=True)
class LiftData:
    number: int
    data: bytes  # decoded payload bytes


@dataclass(frozen=True)
class LiftEnd:
    number: int
    resource: dict[str, Any]  # the line's object without `data`
    size: int  # decoded payload bytes


Event = Line | LiftStart | LiftData | LiftEnd


def open_payload_at(head: bytes) -> int | None:
    """Where the value of the top-level `"data"` member starts, if it is a string `head` does
    not close; else None. `head` is the start of one JSON object."""
    depth = 0
    key: bytes | None = None
    after_colon = False
    position = 0
    length = len(head)
    while position < length:
        char = head[position]
        if char == 0x22:  # a string: jump to its closing quote
            end = _closing_quote(head, position + 1)
            if end < 0:
                if depth == 1 and after_colon and key == b"data":
                    return position + 1
                return None
            if depth == 1 and not after_colon:
                key = head[position + 1 : end]
            position = end + 1
            continue
        if char in b"{[":
            depth += 1
            after_colon = False
        elif char in b"}]":
            depth -= 1
        elif char == 0x3A:  # :
            after_colon = True
        elif char == 0x2C:  # ,
            after_colon = False
            if depth == 1:
                key = None
        position += 1
    return None


def _closing_quote(data: bytes, start: int) -> int:
    """Index of the quote closing a string whose content starts at `start`, or -1."""
    position = start
    while True:
        quote = data.find(b'"', position)
        if quote < 0:
            return -1
        backslashes = 0
        before = quote - 1
        while before >= start and data[before] == 0x5C:
            backslashes += 1
            before -= 1
        if backslashes % 2 == 0:
            return quote
        position = quote + 1


class _Base64Stream:
    """Decodes base64 text arriving in pieces of any size.

    `decode_plain` is the fast path for what the platform writes (nothing but base64 symbols):
    the piece is decoded where it lies, through a memoryview, without being copied or scanned
    first. `feed` takes anything a JSON encoder may emit (escapes, line breaks) at the cost of
    a few copies and scans per piece.
    """

    def __init__(self, line: int) -> None:
        self._line = line
        self._carry = b""  # undecoded text (fewer than 4 symbols) or a pending backslash
        self.size = 0

    def decode_plain(self, text: memoryview) -> list[bytes] | None:
        """The decoded pieces of `text`, or None (nothing consumed) unless it is plain base64.

        The group left open by the piece before is completed from the first bytes of this one
        and decoded on its own, so the rest is decoded in place.
        """
        carry = self._carry
        if b"\\" in carry:
            return None
        need = -len(carry) % 4
        if len(text) < need:
            return None
        head = carry + bytes(text[:need])
        cut = need + (len(text) - need) // 4 * 4
        if b"=" in head and cut > need:
            return None  # padding in mid-payload: let `feed` judge it as one piece
        try:
            pieces = [_b64decode(head), _b64decode(text[need:cut])]
        except binascii.Error:
            return None  # not plain: whitespace, an escape, or damage `feed` will name
        self._carry = bytes(text[cut:])
        self.size += len(pieces[0]) + len(pieces[1])
        return [piece for piece in pieces if piece]

    def feed(self, text: bytes) -> bytes:
        text = self._carry + text
        self._carry = b""
        if b"\\" in text:
            if text.endswith(b"\\") and not text.endswith(b"\\\\"):
                text, self._carry = text[:-1], b"\\"
            text = _unescape(text, self._line)
        if any(space in text for space in _WHITESPACE):
            text = text.translate(None, _WHITESPACE)
        cut = len(text) - len(text) % 4
        self._carry = text[cut:] + self._carry
        return self._decode(text[:cut])

    def finish(self) -> bytes:
        if self._carry:
            raise LiftError(
                f"line {self._line}: the inline data is not valid base64 (it ends mid-group); "
                "the export is damaged, request it again"
            )
        return b""

    def _decode(self, text: bytes) -> bytes:
        try:
            decoded = _b64decode(text)
        except binascii.Error:
            raise LiftError(
                f"line {self._line}: the inline data is not valid base64; "
                "the export is damaged, request it again"
            ) from None
        self.size += len(decoded)
        return decoded


def _b64decode(text: bytes | memoryview) -> bytes:
    """pybase64 (SIMD) decodes ~2 GB/s here (several times that on pieces that fit in the
    cache) against CPython's ~0.4-0.9 GB/s, and releases the GIL, so a lift decoding in a
    thread overlaps the hashing and writing. binascii.Error on anything but base64."""
    if not text:
        return b""
    return pybase64.b64decode(text, validate=True)


def _unescape(text: bytes, line: int) -> bytes:
    out = text.replace(b"\\/", b"/").replace(b"\\n", b"").replace(b"\\r", b"")
    if b"\\" in out:
        raise LiftError(
            f"line {line}: the inline data holds a JSON escape base64 cannot contain; "
            "the export is damaged, request it again"
        )
    return out


class BinaryLifter:
    """See the module docstring. Feed chunks, then call `finish()` once."""

    def __init__(self, threshold: int) -> None:
        if threshold < 64:
            raise ValueError("threshold must be at least 64 bytes")
        self.threshold = threshold
        self._line = 1
        self._pieces: list[bytes] = []  # the current line so far (ordinary mode)
        self._buffered = 0
        self._checked = False  # the head of an overlong line was looked at and is not liftable
        self._prefix = b""  # in a lift: the line up to the payload
        self._payload: _Base64Stream | None = None
        self._tail: list[bytes] | None = None  # in a lift, after the payload's closing quote
        self._tail_size = 0

    def feed(self, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        position = 0
        while position < len(chunk):
            if self._tail is not None:
                position = self._feed_tail(chunk, position, events)
            elif self._payload is not None:
                position = self._feed_payload(chunk, position, events)
            else:
                position = self._feed_line(chunk, position, events)
        return events

    def finish(self) -> list[Event]:
        if self._payload is not None and self._tail is None:
            raise LiftError(
                f"line {self._line}: the file ends inside inline data; the download is "
                "truncated, fetch it again"
            )
        events: list[Event] = []
        if self._tail is not None:
            self._end_lift(events)
        elif self._pieces:
            events.append(Line(self._line, b"".join(self._pieces)))
            self._pieces, self._buffered = [], 0
        return events

    def _feed_line(self, chunk: bytes, position: int, events: list[Event]) -> int:
        newline = chunk.find(b"\n", position)
        end = newline if newline >= 0 else len(chunk)
        if not self._checked and self._buffered + (end - position) > self.threshold:
            # The line outgrows the threshold: look at its first `threshold` bytes.
            take = self.threshold - self._buffered
            self._pieces.append(chunk[position : position + take])
            head = b"".join(self._pieces)
            start = open_payload_at(head)
            if start is None:
                self._checked = True
                self._pieces, self._buffered = [head], len(head)
                return position + take
            events.append(LiftStart(self._line))
            self._prefix = head[:start]
            self._pieces, self._buffered = [], 0
            self._payload = _Base64Stream(self._line)
            self._payload_text(memoryview(head)[start:], events)  # (it does not close there)
            return position + take
        self._pieces.append(chunk[position:end])
        self._buffered += end - position
        if newline < 0:
            return len(chunk)
        events.append(Line(self._line, b"".join(self._pieces)))
        self._line += 1
        self._pieces, self._buffered, self._checked = [], 0, False
        return newline + 1

    def _feed_payload(self, chunk: bytes, position: int, events: list[Event]) -> int:
        assert self._payload is not None
        quote = chunk.find(b'"', position)
        end = quote if quote >= 0 else len(chunk)
        if end > position:
            decoded = self._payload.decode_plain(memoryview(chunk)[position:end])
            if decoded is None:
                if chunk.find(b"\n", position, end) >= 0:
                    raise LiftError(
                        f"line {self._line}: the line ends inside its inline data; the export "
                        "is damaged, request it again"
                    )
                decoded = [self._payload.feed(chunk[position:end])]
            events.extend(LiftData(self._line, piece) for piece in decoded if piece)
        if quote < 0:
            return len(chunk)
        self._payload.finish()
        self._tail, self._tail_size = [], 0
        return quote + 1

    def _payload_text(self, text: memoryview, events: list[Event]) -> None:
        """The payload's first bytes, from the line's head (no newline, no closing quote):
        decoded in place when plain, so the head is not copied again."""
        assert self._payload is not None
        decoded = self._payload.decode_plain(text)
        if decoded is None:
            decoded = [self._payload.feed(bytes(text))]
        events.extend(LiftData(self._line, piece) for piece in decoded if piece)

    def _feed_tail(self, chunk: bytes, position: int, events: list[Event]) -> int:
        assert self._tail is not None
        newline = chunk.find(b"\n", position)
        end = newline if newline >= 0 else len(chunk)
        if end > position:
            self._tail.append(chunk[position:end])
            self._tail_size += end - position
        if self._tail_size > MAX_TAIL_BYTES:
            raise LiftError(
                f"line {self._line}: more than {MAX_TAIL_BYTES} bytes follow the inline data; "
                "the line is not a FHIR Binary the tracker can ingest"
            )
        if newline < 0:
            return len(chunk)
        self._end_lift(events)
        return newline + 1

    def _end_lift(self, events: list[Event]) -> None:
        assert self._payload is not None
        assert self._tail is not None
        tail = b"".join(self._tail)  # what follows the payload's closing quote
        try:
            resource = orjson.loads(self._prefix[:-1] + b"null" + tail)
        except orjson.JSONDecodeError:
            raise LiftError(
                f"line {self._line}: the line around its inline data is not valid JSON; "
                "the export is damaged, request it again"
            ) from None
        if not isinstance(resource, dict):
            raise LiftError(f"line {self._line}: not a JSON object")
        resource.pop("data", None)
        events.append(LiftEnd(self._line, resource, self._payload.size))
        self._line += 1
        self._prefix, self._payload, self._tail, self._tail_size = b"", None, None, 0
