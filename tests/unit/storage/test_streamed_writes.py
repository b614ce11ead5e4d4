"""Large files written through the page cache hand their bytes to the disk a window at a time as
they are written (`storage.writeback`): the local store's objects and the tracker's downloads.
The bytes stay exactly those written, and a resumed download does not hand its kept bytes again."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import pytest

from ehiconnect.storage import appender, writeback
from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.tracker import client

WINDOW = 64 * 1024


class Handed:
    """Records the ranges handed to the disk (sync_file_range without a wait flag)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, fd: int, start: int, length: int, flags: int) -> int:
        if not flags & 1:
            self.ranges.append((start, start + length))
        return 0


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> Handed:
    recorder = Handed()
    monkeypatch.setattr(writeback, "_sync_file_range", recorder)
    monkeypatch.setattr(writeback, "WINDOW", WINDOW)
    monkeypatch.setattr(appender, "_FLUSH_EVERY", WINDOW // 4)  # the download's appender
    return recorder


def _contiguous_from(start: int, ranges: list[tuple[int, int]]) -> bool:
    return (
        bool(ranges)
        and ranges[0][0] == start
        and all(before[1] == after[0] for before, after in itertools.pairwise(ranges))
    )


async def test_a_large_object_goes_to_the_disk_as_it_is_written(
    tmp_path: Path, handed: Handed
) -> None:
    store = LocalBlobStore(tmp_path / "store", chunk_size=100_000)
    pieces = [os.urandom(size) for size in (1, 70_000, 300_000, 5, 250_000, 99_999)]
    async with store.open_writer("downloads/job/0.ingest.ndjson") as writer:
        for piece in pieces:
            await writer.write(piece)

    whole = b"".join(pieces)
    assert b"".join([c async for c in store.open_reader("downloads/job/0.ingest.ndjson")]) == whole
    assert writer.stored.sha256 == hashlib.sha256(whole).hexdigest()
    assert _contiguous_from(0, handed.ranges)  # every window once, in order, from the start
    assert handed.ranges[-1][1] > len(whole) - 2 * WINDOW


async def test_a_resumed_download_hands_only_its_new_bytes_to_the_disk(
    tmp_path: Path, handed: Handed
) -> None:
    path = tmp_path / "0.part"
    kept = os.urandom(300_000)
    path.write_bytes(kept)
    added = [os.urandom(40_000) for _ in range(20)]

    partial = client._PartialFile.open(path, None)
    try:
        assert partial.resumed_from == len(kept)
        for piece in added[:-1]:
            partial.append(piece)
        partial.append(added[-1], sync=True)
        whole = kept + b"".join(added)
        done = partial.verify(hashlib.sha256(whole).hexdigest(), len(whole))
    finally:
        partial.close()

    assert (done.size, path.read_bytes()) == (len(whole), whole)
    assert _contiguous_from(len(kept), handed.ranges)  # the kept bytes are not handed again

    partial = client._PartialFile.open(path, len(whole) - 1)  # larger than announced: restart
    try:
        handed.ranges.clear()
        for piece in added:
            partial.append(piece)
    finally:
        partial.close()
    assert partial.resumed_from == 0
    assert _contiguous_from(0, handed.ranges)
    assert path.read_bytes() == b"".join(added)
