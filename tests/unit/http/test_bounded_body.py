"""A body decoded within a limit: whole when it fits, refused (never held) when it does not."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from ehiconnect.http.bounded_body import BodyTooLarge, BodyUndecodable, BoundedBody

TEXT = b'{"resourceType": "Bundle", "entry": [' + os.urandom(40_000).hex().encode() + b"]}"


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def decoded(encoding: str | None, data: bytes, *, size: int, limit: int = 1 << 20) -> bytes:
    body = BoundedBody(encoding, limit)
    for piece in pieces(data, size):
        body.feed(piece)
    return body.result()


def deflate(data: bytes, *, wrapped: bool) -> bytes:
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda data: data),
        ("identity", lambda data: data),
        ("gzip", gzip.compress),
        ("X-Gzip", gzip.compress),
        ("gzip", lambda data: gzip.compress(data[:1000]) + gzip.compress(data[1000:])),  # members
        ("gzip", lambda data: gzip.compress(data) + bytes(9)),  # zero padding after the end
        ("deflate", lambda data: deflate(data, wrapped=True) + bytes(3)),
        ("deflate", lambda data: deflate(data, wrapped=True)),  # as RFC 9110 says
        ("deflate", lambda data: deflate(data, wrapped=False)),  # as some servers send it
    ],
)
def test_a_body_within_the_limit_is_decoded_whole_however_it_is_cut(
    encoding: str | None, encode: object, size: int
) -> None:
    assert callable(encode)
    assert decoded(encoding, encode(TEXT), size=size) == TEXT


@pytest.mark.parametrize("wrapped", [True, False])
def test_a_deflate_body_whose_first_read_is_one_byte_is_decoded_whole(wrapped: bool) -> None:
    """Which deflate a body is shows in its first two bytes: a first read of one byte is held
    until the next, however long that next read is."""
    data = deflate(TEXT, wrapped=wrapped)
    body = BoundedBody("deflate", 1 << 20)
    body.feed(data[:1])
    body.feed(data[1:])
    assert body.result() == TEXT


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate"])
def test_a_body_of_exactly_the_limit_fits_and_one_byte_more_does_not(encoding: str) -> None:
    encode = {"identity": lambda d: d, "gzip": gzip.compress, "deflate": zlib.compress}[encoding]
    assert decoded(encoding, encode(TEXT), size=999, limit=len(TEXT)) == TEXT
    with pytest.raises(BodyTooLarge):
        decoded(encoding, encode(TEXT), size=999, limit=len(TEXT) - 1)


def test_a_compression_bomb_is_refused_without_being_inflated() -> None:
    """256 MiB of zeros sent as 256 KiB of gzip, in one piece: refused once 1 MiB is decoded,
    with no more than about that held (a decoder inflating the piece whole holds 256 MiB)."""
    compressor = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    bomb = b"".join(compressor.compress(block) for _ in range(256)) + compressor.flush()
    assert len(bomb) < 1 << 20
    body = BoundedBody("gzip", 1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            body.feed(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


@pytest.mark.parametrize(
    ("encoding", "data", "where"),
    [
        ("gzip", gzip.compress(TEXT)[:-100], "result"),  # cut off part-way
        ("gzip", b"not gzip at all", "feed"),
        ("deflate", zlib.compress(TEXT) + b"trailing", "feed"),
        ("br", b"whatever", "open"),  # never asked for: `ACCEPT_ENCODING`
    ],
    ids=["truncated", "garbage", "bytes after the end", "unknown encoding"],
)
def test_a_body_not_in_its_declared_encoding_is_undecodable(
    encoding: str, data: bytes, where: str
) -> None:
    """Refused where it shows: an unknown encoding at once, damage as it is fed, a cut-off body
    when the whole is asked for."""

    def read() -> bytes:
        body = BoundedBody(encoding, 1 << 20)
        reached.append("open")
        body.feed(data)
        reached.append("feed")
        return body.result()

    reached: list[str] = []
    with pytest.raises(BodyUndecodable) as refused:
        read()
    assert reached == {"open": [], "feed": ["open"], "result": ["open", "feed"]}[where]
    assert encoding in str(refused.value)
