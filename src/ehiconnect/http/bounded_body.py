"""A response body decoded within a size limit (pure: bytes in, bytes out).

A body that must be held whole (a FHIR JSON page, parsed in memory) is bounded once decoded: a
gzip body of a few KiB can inflate to gigabytes, and a decoder that inflates each received chunk
whole (httpx's, the standard library's `gzip.decompress`) holds all of it before anything can
count it. Here each chunk is inflated at most up to what the limit still allows, so no more than
the limit (plus one chunk of compressed input) is ever held.

Encodings: `identity`, `gzip` (`x-gzip`; several members, as concatenated gzip files are), and
`deflate` (zlib-wrapped as RFC 9110 says, or raw as some servers send it). A client reading with
this decoder asks for those only (`ACCEPT_ENCODING`).
"""

from __future__ import annotations

import zlib

ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(Exception):
    """The decoded body passed the limit."""


class BodyUndecodable(Exception):
    """The body is not in the encoding it declares, or in one this decoder does not know."""


class BoundedBody:
    """Collects a body's decoded bytes; `feed` raises `BodyTooLarge` past `limit` of them."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BodyUndecodable(f"the body's content encoding {encoding!r} is not supported")
        self._encoding = encoding
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []
        self._inflater: zlib._Decompress | None = None  # made from the first bytes
        self._ended = False  # the last gzip member (or the deflate stream) is complete
        self._head = b""  # a deflate body's first byte, until its second comes

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._encoding == "identity":
            self._keep(data)
            return
        if self._inflater is None and self._encoding == "deflate":
            # Which deflate it is shows in the first two bytes: a first byte waits for the next.
            data, self._head = self._head + data, b""
            if len(data) < 2:
                self._head = data
                return
        while data:
            if self._inflater is None:
                self._inflater = self._new_inflater(data)
            inflater = self._inflater
            try:
                # At most one byte past the limit: enough to know it was passed.
                piece = inflater.decompress(data, self._limit - self._size + 1)
            except zlib.error as error:
                raise BodyUndecodable(f"the {self._encoding} body is damaged ({error})") from None
            self._keep(piece)
            if inflater.unconsumed_tail:
                data = inflater.unconsumed_tail
                continue
            if inflater.eof:
                self._ended = True
                # Zero bytes may pad the end (as Python's own gzip reader allows); anything else
                # after a gzip member is the next member.
                data = inflater.unused_data.lstrip(b"\0")
                if data and self._encoding != "deflate":
                    self._inflater, self._ended = None, False
                    continue
                if data:
                    raise BodyUndecodable(f"bytes follow the end of the {self._encoding} body")
            return

    def result(self) -> bytes:
        """The whole decoded body; `BodyUndecodable` if a compressed one stopped part-way."""
        if self._head:
            raise BodyUndecodable(f"the {self._encoding} body ends part-way")
        inflater = self._inflater
        if inflater is not None and not self._ended:
            try:
                self._keep(inflater.flush())  # what the last input left inside zlib (< 64 KiB)
            except zlib.error as error:
                raise BodyUndecodable(f"the {self._encoding} body is damaged ({error})") from None
            if not inflater.eof:
                raise BodyUndecodable(f"the {self._encoding} body ends part-way")
        return b"".join(self._chunks)

    def _keep(self, piece: bytes) -> None:
        self._size += len(piece)
        if self._size > self._limit:
            raise BodyTooLarge
        self._chunks.append(piece)

    def _new_inflater(self, first: bytes) -> zlib._Decompress:
        if self._encoding != "deflate":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # RFC 9110's deflate is zlib-wrapped (a two-byte header whose value is a multiple of
        # 31, method 8); some servers send the raw stream instead.
        wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and int.from_bytes(first[:2]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
