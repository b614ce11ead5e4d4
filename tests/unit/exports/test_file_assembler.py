"""The export file's assembler: chunks hashed and written by two threads, several in flight at
once, must still land in the file, and in its sha256, in the order they were given; a rollback
cuts both back to the mark."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from ehiconnect.exports.package import CHUNK_SIZE, IN_FLIGHT, _FileAssembler
from ehiconnect.storage.appender import open_appender


def _chunks(count: int) -> list[bytes]:
    # distinct, uneven sizes: some above CHUNK_SIZE (sent at once), some below (buffered)
    return [os.urandom(CHUNK_SIZE + n * 4099 if n % 2 else 1000 + n) for n in range(count)]


DIRECT = pytest.mark.parametrize("direct", [True, False], ids=["direct", "page-cache"])


@DIRECT
async def test_many_chunks_in_flight_keep_their_order_in_file_and_hash(
    tmp_path: Path, direct: bool
) -> None:
    path = tmp_path / "export.ndjson"
    path.touch()
    chunks = _chunks(IN_FLIGHT * 4)
    with contextlib.closing(open_appender(path, 0, direct=direct)) as file:
        out = _FileAssembler(file, 0, hashlib.sha256())
        try:
            for chunk in chunks:
                await out.write(chunk)
            await out.flush()
        finally:
            await out.settle()
            out.close()
    whole = b"".join(chunks)
    assert path.read_bytes() == whole
    assert out.hexdigest() == hashlib.sha256(whole).hexdigest()
    assert out.offset == len(whole)


@DIRECT
async def test_a_rollback_with_chunks_in_flight_cuts_file_and_hash_back(
    tmp_path: Path, direct: bool
) -> None:
    path = tmp_path / "export.ndjson"
    path.touch()
    kept, dropped, after = _chunks(3), _chunks(IN_FLIGHT + 2), [b"last line\n"]
    with contextlib.closing(open_appender(path, 0, direct=direct)) as file:
        out = _FileAssembler(file, 0, hashlib.sha256())
        try:
            for chunk in kept:
                await out.write(chunk)
            mark = await out.mark()
            for chunk in dropped:
                await out.write(chunk)
            await out.rollback(mark)
            for chunk in after:
                await out.write(chunk)
            await out.flush()
        finally:
            await out.settle()
            out.close()
    whole = b"".join(kept + after)
    assert path.read_bytes() == whole
    assert out.hexdigest() == hashlib.sha256(whole).hexdigest()
