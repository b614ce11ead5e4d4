"""Attachment bytes made from a seed, streamed piece by piece, never held whole.

An `AttachmentSpec` is a small value (id, content type, exact size, seed). Its bytes are a pure
function of the spec: `iter_attachment_bytes(spec)` yields them in pieces of at most 1 MiB, so a
3 GB attachment costs the same memory as a 3 kB one. Tests and exports compare against
`attachment_sha256(spec)`, which streams through the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import random
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

AttachmentKind = Literal["note", "pdf", "png", "dicom"]
PIECE = 1 << 20

CONTENT_TYPES: dict[AttachmentKind, str] = {
    "note": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
    "png": "image/png",
    "dicom": "application/dicom",
}

_NOTE_LINES = (
    "Patient seen today for follow-up. Reports feeling generally well.",
    "Vital signs reviewed and within expected limits for age.",
    "Medications reconciled; no changes to current regimen.",
    "Discussed diet, exercise and sleep; patient verbalized understanding.",
    "Labs from the previous visit reviewed with the patient.",
    "No acute distress. Lungs clear to auscultation bilaterally.",
    "Plan: continue current therapy, return in three months or sooner if needed.",
    "Allergies reviewed and unchanged since last visit.",
)


@dataclass(frozen=True)
class AttachmentSpec:
    """Everything needed to reproduce one attachment's bytes exactly."""

    binary_id: str
    kind: AttachmentKind
    size: int
    seed: int
    title: str
    body_size: int = 0
    """For `pdf` and `dicom`: the length of the seeded binary body inside the envelope."""

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.kind]


def make_spec(
    binary_id: str, kind: AttachmentKind, seed: int, title: str, body_size: int
) -> AttachmentSpec:
    """A spec whose `size` is exact; `body_size` is the wanted payload length."""
    if kind == "note":
        return AttachmentSpec(binary_id, kind, body_size, seed, title)
    if kind == "png":
        return AttachmentSpec(binary_id, kind, len(_png(seed, body_size)), seed, title, body_size)
    head, tail = _envelope(kind, title, body_size)
    return AttachmentSpec(
        binary_id, kind, len(head) + body_size + len(tail), seed, title, body_size
    )


def iter_attachment_bytes(
    spec: AttachmentSpec, start: int = 0, stop: int | None = None
) -> Iterator[bytes]:
    """The attachment's bytes `[start, stop)` (default: all) in pieces of at most 1 MiB.

    Seeking is cheap: the pieces before `start` are not generated.
    """
    stop = spec.size if stop is None else min(stop, spec.size)
    for offset, piece in _pieces(spec, start):
        end = offset + len(piece)
        if end <= start:
            continue
        if offset >= stop:
            return
        yield piece[max(0, start - offset) : min(len(piece), stop - offset)]


def _pieces(spec: AttachmentSpec, start: int) -> Iterator[tuple[int, bytes]]:
    """(offset, piece) pairs covering the attachment, skipping noise pieces before `start`."""
    if spec.kind == "note":
        offset = 0
        for piece in _note(spec.seed, spec.size, spec.title):
            yield offset, piece
            offset += len(piece)
    elif spec.kind == "png":
        yield 0, _png(spec.seed, spec.body_size)
    else:
        head, tail = _envelope(spec.kind, spec.title, spec.body_size)
        yield 0, head
        first = max(0, start - len(head)) // PIECE
        offset = len(head) + first * PIECE
        for piece in _noise(spec.seed, spec.body_size, first):
            yield offset, piece
            offset += len(piece)
        if tail:
            yield offset, tail


def attachment_sha256(spec: AttachmentSpec) -> str:
    """Hex SHA-256 of the attachment, computed by streaming (seconds for gigabytes)."""
    digest = hashlib.sha256()
    for piece in iter_attachment_bytes(spec):
        digest.update(piece)
    return digest.hexdigest()


def rechunk(pieces: Iterable[bytes], multiple: int) -> Iterator[bytes]:
    """Regroup pieces so every one but the last has a length divisible by `multiple`.

    Base64-encoding each piece separately then gives the same text as encoding the whole.
    """
    carry = b""
    for piece in pieces:
        data = carry + piece if carry else piece
        cut = len(data) - len(data) % multiple
        if cut:
            yield data[:cut]
        carry = data[cut:]
    if carry:
        yield carry


def _noise(seed: int, length: int, first_index: int = 0) -> Iterator[bytes]:
    """Seeded pseudo-random bytes: one 1 MiB block, each piece stamped with its index."""
    block = _noise_block(seed, min(length, PIECE))
    index = first_index
    remaining = length - first_index * PIECE
    while remaining > 0:
        size = min(PIECE, remaining)
        stamp = struct.pack(">QQ", seed & 0xFFFFFFFFFFFFFFFF, index)[:size]
        yield b"".join((stamp, memoryview(block)[len(stamp) : size]))
        remaining -= size
        index += 1


# The blocks, images and notes below are pure functions of their arguments, made again for
# every download of the same attachment (a crawl downloads each once, a bench crawls a persona
# twice, tests many times): they are kept, bounded. A noise block is at most 1 MiB, so the
# blocks kept hold at most 32 MiB; an image or a note a few kB.
@functools.lru_cache(maxsize=32)
def _noise_block(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data


def _note(seed: int, size: int, title: str) -> Iterator[bytes]:
    text = _note_text(seed, size, title)
    for start in range(0, len(text), PIECE):
        yield text[start : start + PIECE]


@functools.lru_cache(maxsize=512)
def _note_text(seed: int, size: int, title: str) -> bytes:
    rng = random.Random(seed)  # noqa: S311
    out = bytearray(f"{title}\n\n".encode())
    while len(out) < size:
        out += rng.choice(_NOTE_LINES).encode() + b"\n"
    return bytes(out[:size])


@functools.lru_cache(maxsize=256)
def _envelope(kind: AttachmentKind, title: str, body_size: int) -> tuple[bytes, bytes]:
    if kind == "dicom":
        return b"\x00" * 128 + b"DICM", b""
    safe_title = "".join(c for c in title if c.isalnum() or c in " -.,:")[:80]
    page_text = f"BT /F1 14 Tf 72 720 Td ({safe_title}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(page_text) + page_text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    head = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(head))
        head += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    offsets.append(len(head))
    head += b"6 0 obj\n<< /Type /EmbeddedFile /Length %d >>\nstream\n" % body_size
    tail = bytearray(b"\nendstream\nendobj\n")
    xref_at = len(head) + body_size + len(tail)
    tail += b"xref\n0 7\n0000000000 65535 f \n"
    for offset in offsets:
        tail += b"%010d 00000 n \n" % offset
    tail += b"trailer\n<< /Size 7 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(head), bytes(tail)


@functools.lru_cache(maxsize=256)
def _png(seed: int, side: int) -> bytes:
    """A small valid RGB PNG: a seeded colour gradient, `side` pixels square."""
    rng = random.Random(seed)  # noqa: S311
    side = max(8, min(side, 1024))
    r0, g0, b0 = rng.randrange(256), rng.randrange(256), rng.randrange(256)
    rows = bytearray()
    for y in range(side):
        rows.append(0)  # filter type "None" for each scanline
        rows += bytes(
            v for x in range(side) for v in ((r0 + x) % 256, (g0 + y) % 256, (b0 + x + y) % 256)
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
