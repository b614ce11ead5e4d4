"""The local-directory and in-memory BlobStores keep the port's promises."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.storage.memory import MemoryBlobStore
from ehiconnect.storage.port import (
    BlobNotFound,
    BlobStore,
    BlobWriter,
    InvalidKey,
    InvalidRange,
    StorageError,
    validate_key,
)

DATA = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return MemoryBlobStore()


async def _read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.open_reader(key, start, end)])


class CrawlFailed(Exception):
    pass


async def _write_then_fail(store: BlobStore, key: str, data: bytes, seen: list[BlobWriter]) -> None:
    async with store.open_writer(key) as writer:
        seen.append(writer)
        await writer.write(data)
        raise CrawlFailed("crawl failed")


async def _put(store: BlobStore, key: str, data: bytes, piece: int = 100_000) -> None:
    async with store.open_writer(key) as writer:
        for offset in range(0, len(data), piece):
            await writer.write(data[offset : offset + piece])


async def test_round_trip_reports_size_and_sha256(store: BlobStore) -> None:
    async with store.open_writer("exports/2026-11-29-a.jsonl") as writer:
        await writer.write(DATA[:10])
        await writer.write(DATA[10:])
    assert writer.stored.size == len(DATA)
    assert writer.stored.sha256 == hashlib.sha256(DATA).hexdigest()
    assert await _read(store, "exports/2026-11-29-a.jsonl") == DATA
    info = await store.stat("exports/2026-11-29-a.jsonl")
    assert info is not None
    assert info.size == len(DATA)
    assert info.etag


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 1),
        (5, 1024 * 1024 + 3),
        (len(DATA) - 1, None),
        (1000, None),
        (7, 10**12),
        # A local store reads a range of up to one chunk (1 MiB) in one go, a longer one by chunks.
        (3, 3 + 1024 * 1024),
        (3, 4 + 1024 * 1024),
    ],
)
async def test_range_reads_match_python_slices(
    store: BlobStore, start: int, end: int | None
) -> None:
    await _put(store, "r", DATA)
    assert await _read(store, "r", start, end) == DATA[start:end]


@pytest.mark.parametrize(
    ("start", "end"), [(len(DATA), None), (len(DATA) + 5, None), (-1, None), (10, 5)]
)
async def test_unsatisfiable_ranges_are_refused(
    store: BlobStore, start: int, end: int | None
) -> None:
    await _put(store, "r", DATA)
    with pytest.raises(InvalidRange):
        await _read(store, "r", start, end)


async def test_empty_object_round_trips(store: BlobStore) -> None:
    async with store.open_writer("empty") as writer:
        pass
    assert writer.stored.size == 0
    assert await _read(store, "empty") == b""


async def test_a_failed_writer_leaves_no_object_and_keeps_the_previous_one(
    store: BlobStore,
) -> None:
    await _put(store, "x/file", b"old")
    seen: list[BlobWriter] = []
    with pytest.raises(CrawlFailed, match="crawl failed"):
        await _write_then_fail(store, "x/file", DATA, seen)
    with pytest.raises(StorageError, match="not committed"):
        _ = seen[0].stored
    assert await _read(store, "x/file") == b"old"
    with pytest.raises(CrawlFailed):
        await _write_then_fail(store, "x/new", b"partial", seen)
    assert await store.stat("x/new") is None


async def test_missing_objects(store: BlobStore) -> None:
    assert await store.stat("nope") is None
    with pytest.raises(BlobNotFound, match="nope"):
        await _read(store, "nope")
    await store.delete("nope")  # deleting what is gone is fine


async def test_delete_removes_the_object(store: BlobStore) -> None:
    await _put(store, "d", b"abc")
    await store.delete("d")
    assert await store.stat("d") is None


async def test_deleting_a_folder_removes_what_is_under_it_and_nothing_else(
    store: BlobStore,
) -> None:
    for key in ("staging/t1/a", "staging/t1/deep/b", "staging/t10/c", "staging/t1.d"):
        await _put(store, key, b"x")
    await store.delete_folder("staging/t1")
    assert await store.stat("staging/t1/a") is None
    assert await store.stat("staging/t1/deep/b") is None
    assert await store.stat("staging/t10/c") is not None  # a name that only starts the same
    assert await store.stat("staging/t1.d") is not None
    await store.delete_folder("staging/t1")  # gone already: fine
    await store.delete_folder("staging/t1.d")  # an object, not a folder: left alone
    assert await store.stat("staging/t1.d") is not None
    with pytest.raises(InvalidKey):
        await store.delete_folder("../staging")


async def test_a_local_folder_goes_with_what_killed_writers_left_and_links_are_not_followed(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path / "root")
    await _put(store, "staging/t/a", b"x")
    folder = tmp_path / "root" / "staging" / "t"
    (folder / ".b.0123456789abcdef.tmp").write_bytes(b"half an attachment")  # no key names it
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"not ours")
    (folder / "link").symlink_to(outside, target_is_directory=True)
    await store.delete_folder("staging/t")
    assert not folder.exists()
    assert (outside / "keep").read_bytes() == b"not ours"


async def test_no_presigned_urls_for_local_or_memory(store: BlobStore) -> None:
    await _put(store, "p", b"abc")
    assert await store.presigned_url("p", expires_in=60) is None


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../etc/passwd",
        "a/../../b",
        "/abs",
        "a//b",
        "a/./b",
        ".hidden",
        "a/.tmp",
        "a\\b",
        "sp ace",
        "nul\x00",
        "x" * 1025,
        "a/",
    ],
)
async def test_escaping_or_odd_keys_are_refused_everywhere(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        async with store.open_writer(key) as writer:
            await writer.write(b"x")
    with pytest.raises(InvalidKey):
        await store.stat(key)
    with pytest.raises(InvalidKey):
        await store.delete(key)
    with pytest.raises(InvalidKey):
        await _read(store, key)


def test_valid_keys() -> None:
    for key in ("exports/2026-11-29-0f2b6a48.jsonl", "a=b/c_d-e.f", "x"):
        assert validate_key(key) == key


async def test_local_store_refuses_a_symlink_pointing_outside_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = LocalBlobStore(root)
    with pytest.raises(InvalidKey, match="outside"):
        async with store.open_writer("link/file") as writer:
            await writer.write(b"x")
    assert list(outside.iterdir()) == []


async def test_local_store_refuses_a_symlink_made_inside_the_root_after_first_use(
    tmp_path: Path,
) -> None:
    """Keys are checked each time they are used: a directory already written to and later
    replaced by a link to elsewhere takes no more files."""
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalBlobStore(tmp_path / "root")
    await _put(store, "staging/t/a", b"x")
    (tmp_path / "root" / "staging" / "t" / "a").unlink()
    (tmp_path / "root" / "staging" / "t").rmdir()
    (tmp_path / "root" / "staging" / "t").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey, match="outside"):
        await _put(store, "staging/t/b", b"y")
    (tmp_path / "root" / "staging" / "c").symlink_to(outside / "f")
    with pytest.raises(InvalidKey, match="outside"):
        store.path_for("staging/c")
    assert list(outside.iterdir()) == []


async def test_local_delete_and_stat_refuse_a_key_through_a_link_to_elsewhere(
    tmp_path: Path,
) -> None:
    """Deleting, deleting a folder and stat resolve the key (off the event loop) as writing
    does: through a link out of the root they touch nothing there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"keep")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = LocalBlobStore(root)
    with pytest.raises(InvalidKey, match="outside"):
        await store.delete("link/f")
    with pytest.raises(InvalidKey, match="outside"):
        await store.delete_folder("link")
    with pytest.raises(InvalidKey, match="outside"):
        await store.stat("link/f")
    with pytest.raises(InvalidKey):
        await store.delete("../outside/f")
    assert (outside / "f").read_bytes() == b"keep"
    await _put(store, "a/b", b"xy")
    (root / "a" / "dir").mkdir()
    info = await store.stat("a/b")
    assert info is not None
    assert info.size == 2
    assert await store.stat("a/dir") is None  # not an object
    assert await store.stat("a/missing") is None


def test_a_local_symlink_within_the_root_gives_its_resolved_path(tmp_path: Path) -> None:
    (tmp_path / "root" / "real").mkdir(parents=True)
    (tmp_path / "root" / "alias").symlink_to(tmp_path / "root" / "real")
    store = LocalBlobStore(tmp_path / "root")
    assert store.path_for("alias/f") == tmp_path / "root" / "real" / "f"
    assert store.path_for("real/g/h") == tmp_path / "root" / "real" / "g" / "h"
    (tmp_path / "root" / "self").symlink_to(tmp_path / "root")
    with pytest.raises(InvalidKey, match="outside"):
        store.path_for("self")


async def test_local_store_writes_atomically_via_a_hidden_temp_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, chunk_size=1024)
    async with store.open_writer("exports/f.jsonl") as writer:
        await writer.write(b"x" * 5000)
        assert not (tmp_path / "exports" / "f.jsonl").exists(), "visible before commit"
        temps = list((tmp_path / "exports").iterdir())
        assert len(temps) == 1
        assert temps[0].name.startswith(".")
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["f.jsonl"]
    with pytest.raises(CrawlFailed):
        await _write_then_fail(store, "exports/g.jsonl", b"y" * 5000, [])
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["f.jsonl"]
    # Smaller than a chunk: held until the block ends (file made, written and committed in one
    # thread hop), so a failure before then leaves nothing either.
    with pytest.raises(CrawlFailed):
        await _write_then_fail(store, "exports/h.jsonl", b"z" * 100, [])
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["f.jsonl"]
    async with store.open_writer("exports/i.jsonl") as writer:
        for piece in (b"a" * 300, b"b" * 300, b"c" * 300):
            await writer.write(piece)
    assert (tmp_path / "exports" / "i.jsonl").read_bytes() == b"a" * 300 + b"b" * 300 + b"c" * 300
    assert (
        writer.stored.sha256
        == hashlib.sha256((tmp_path / "exports" / "i.jsonl").read_bytes()).hexdigest()
    )


async def test_local_reader_yields_chunks_of_the_configured_size(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    await _put(store, "big", DATA)
    sizes = [len(chunk) async for chunk in store.open_reader("big")]
    assert sizes[0] == 1024 * 1024
    assert sum(sizes) == len(DATA)


async def test_reader_of_a_cancelled_download_closes_its_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, chunk_size=1024)
    await _put(store, "f", DATA[:10_000])
    reader: AsyncIterator[bytes] = store.open_reader("f")
    assert len(await reader.__anext__()) == 1024
    await reader.aclose()  # type: ignore[attr-defined]
    await store.delete("f")
    assert await store.stat("f") is None


async def test_local_files_are_private_to_the_service_user(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    await _put(store, "exports/phi.jsonl", b"{}")
    assert (tmp_path / "root" / "exports" / "phi.jsonl").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "root" / "exports").stat().st_mode & 0o777 == 0o700


def test_a_local_root_made_after_first_use_as_a_symlink_still_takes_keys(tmp_path: Path) -> None:
    """The root is resolved once it exists: asked before it existed, a store must not keep the
    unresolved path and refuse every key once the root turns out to be a symlink."""
    store = LocalBlobStore(tmp_path / "blobs")
    assert store.path_for("a/b") == tmp_path / "blobs" / "a" / "b"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "blobs").symlink_to(tmp_path / "elsewhere")
    assert store.path_for("a/b") == tmp_path / "elsewhere" / "a" / "b"
    assert store.path_for("c") == tmp_path / "elsewhere" / "c"
