from __future__ import annotations

import base64
import hashlib
import struct
import tracemalloc
import zlib

import pytest

from ehiconnect.sandbox.generator import (
    attachment_sha256,
    expected_attachments,
    iter_attachment_bytes,
)
from ehiconnect.sandbox.generator.attachments import make_spec, rechunk


@pytest.mark.parametrize(
    ("kind", "payload"), [("note", 5000), ("pdf", 2_500_000), ("png", 128), ("dicom", 3_000_001)]
)
def test_streamed_bytes_have_exactly_the_announced_size_and_hash(kind: str, payload: int) -> None:
    spec = make_spec("b1", kind, 1234, "Progress note 2025-01-02", payload)  # type: ignore[arg-type]
    data = b"".join(iter_attachment_bytes(spec))
    assert len(data) == spec.size
    assert hashlib.sha256(data).hexdigest() == attachment_sha256(spec)
    assert all(len(piece) <= 1 << 20 for piece in iter_attachment_bytes(spec))


def test_formats_look_like_what_their_content_type_says() -> None:
    pdf = b"".join(iter_attachment_bytes(make_spec("p", "pdf", 1, "Scan", 10_000)))
    assert pdf.startswith(b"%PDF-1.7")
    assert pdf.rstrip().endswith(b"%%EOF")
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref_at:].startswith(b"xref")
    png = b"".join(iter_attachment_bytes(make_spec("i", "png", 1, "Photo", 64)))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    length = struct.unpack(">I", png[33:37])[0]
    idat = png[41 : 41 + length]
    assert len(zlib.decompress(idat)) == 64 * (64 * 3 + 1)
    dicom = b"".join(iter_attachment_bytes(make_spec("d", "dicom", 1, "CT", 1000)))
    assert dicom[128:132] == b"DICM"


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    a = attachment_sha256(make_spec("x", "pdf", 1, "t", 3_000_000))
    assert a == attachment_sha256(make_spec("x", "pdf", 1, "t", 3_000_000))
    assert a != attachment_sha256(make_spec("x", "pdf", 2, "t", 3_000_000))


def test_big_pieces_differ_so_content_is_not_one_repeated_block() -> None:
    pieces = list(iter_attachment_bytes(make_spec("d", "dicom", 5, "CT", 3 * (1 << 20))))
    assert len({hashlib.sha256(p).digest() for p in pieces[1:]}) == 3


def test_the_huge_attachment_is_described_without_generating_it() -> None:
    specs = list(expected_attachments("harbor", "hugo"))
    tracemalloc.start()
    biggest = max(specs, key=lambda s: s.size)
    first = next(iter(iter_attachment_bytes(biggest)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert biggest.size >= 3_000_000_000
    assert biggest.content_type == "application/dicom"
    assert first.startswith(b"\x00" * 128 + b"DICM")
    assert peak < 8 * 1024 * 1024


def test_rechunked_base64_equals_base64_of_the_whole() -> None:
    pieces = [b"a", b"bcdefg", b"hi", b"", b"jklmnopq"]
    encoded = b"".join(base64.b64encode(p) for p in rechunk(pieces, 3))
    assert encoded == base64.b64encode(b"".join(pieces))


@pytest.mark.parametrize(
    ("start", "stop"),
    [(0, None), (1, 2), (131, 133), (132, 3_000_000), (2_097_000, 2_098_000), (3_145_000, None)],
)
def test_any_byte_range_equals_the_same_slice_of_the_whole(start: int, stop: int | None) -> None:
    spec = make_spec("d", "dicom", 9, "CT", 3 * (1 << 20) + 17)
    whole = b"".join(iter_attachment_bytes(spec))
    assert b"".join(iter_attachment_bytes(spec, start, stop)) == whole[start:stop]


def test_seeking_into_the_huge_attachment_does_not_generate_what_it_skips() -> None:
    spec = max(expected_attachments("harbor", "hugo"), key=lambda s: s.size)
    tail = list(iter_attachment_bytes(spec, spec.size - 10))
    assert sum(len(p) for p in tail) == 10
