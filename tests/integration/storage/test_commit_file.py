"""`BlobStore.commit_file`: a finished local file becomes an object without being written twice.

Local storage renames the store's own staging file over the key (no byte copied); S3 uploads
the file (over the real S3 API of `rclone serve s3`); every adapter checks what it copies against
the sha256 the caller verified and commits nothing on a mismatch.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.storage.memory import MemoryBlobStore
from ehiconnect.storage.port import BlobStore, InvalidKey, StorageError
from ehiconnect.storage.s3 import S3BlobStore
from tests.support.s3_server import BUCKET, S3Server

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
KEY = "downloads/job-1/0.ndjson"


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


async def _read(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.open_reader(key)])


def _count_calls(store: S3BlobStore, operations: list[str]) -> None:
    def record(model: Any, **_: Any) -> None:
        operations.append(model.name)

    store._client.meta.events.register("before-call.s3", record)


async def test_local_staging_file_is_committed_by_a_rename(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    staging = store.staging_path(KEY)
    assert staging == store.staging_path(KEY)  # the same file every time: a download resumes it
    assert staging.parent == store.path_for(KEY).parent  # same directory, so same filesystem
    assert staging.name.startswith(".")  # no key can name it
    data = os.urandom(3 * MIB + 5)
    _file(staging, data)
    staging.chmod(0o644)
    inode = staging.stat().st_ino
    assert await store.stat(KEY) is None  # not visible before the commit

    stored = await store.commit_file(KEY, staging, sha256=hashlib.sha256(data).hexdigest())

    assert (stored.key, stored.size) == (KEY, len(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    committed = store.path_for(KEY)
    assert committed.stat().st_ino == inode  # renamed, not copied
    assert stat.S_IMODE(committed.stat().st_mode) == 0o600  # owner-only, like every stored file
    assert not staging.exists()
    assert await _read(store, KEY) == data
    assert sorted(p.name for p in committed.parent.iterdir()) == ["0.ndjson"]


async def test_local_commit_without_a_digest_computes_it_and_replaces_the_object(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    async with store.open_writer(KEY) as writer:
        await writer.write(b"older content\n")
    data = b'{"resourceType":"Patient","id":"p"}\n' * 1000
    stored = await store.commit_file(KEY, _file(store.staging_path(KEY), data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await _read(store, KEY) == data


async def test_local_commit_from_another_filesystem_copies_and_checks_the_bytes(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    elsewhere = Path("/dev/shm")  # noqa: S108 (a tmpfs; the directory below is mkdtemp's)
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem (/dev/shm) to commit across")
    data = os.urandom(2 * MIB + 1)
    with tempfile.TemporaryDirectory(dir=elsewhere) as scratch:
        source = _file(Path(scratch) / "download.part", data)
        with pytest.raises(StorageError, match="nothing was committed"):
            await store.commit_file(KEY, source, sha256="0" * 64)
        assert await store.stat(KEY) is None
        assert source.read_bytes() == data  # left as it was: the caller decides
        assert not [p for p in store.root.rglob("*") if p.is_file()]  # no temporary file left

        stored = await store.commit_file(KEY, source, sha256=hashlib.sha256(data).hexdigest())
        assert stored.size == len(data)
        assert not source.exists()
    assert await _read(store, KEY) == data


async def test_s3_has_no_staging_file_and_commit_uploads_in_parts(
    s3_server: S3Server, tmp_path: Path
) -> None:
    store = s3_server.store(prefix="tracker")
    assert store.staging_path(KEY) is None
    operations: list[str] = []
    _count_calls(store, operations)
    data = os.urandom(20 * MIB + 3)
    source = _file(tmp_path / "0.part", data)

    stored = await store.commit_file(KEY, source, sha256=hashlib.sha256(data).hexdigest())

    assert operations.count("UploadPart") == 3  # 8 MiB parts: memory holds one, never the file
    assert "CompleteMultipartUpload" in operations
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert not source.exists()
    on_disk = s3_server.root / BUCKET / "tracker" / KEY
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == stored.sha256


async def test_s3_commit_of_bytes_that_changed_since_the_check_uploads_nothing(
    s3_server: S3Server, tmp_path: Path
) -> None:
    store = s3_server.store()
    operations: list[str] = []
    _count_calls(store, operations)
    big = _file(tmp_path / "big.part", os.urandom(9 * MIB))
    with pytest.raises(StorageError, match="nothing was committed"):
        await store.commit_file("downloads/j/big.ndjson", big, sha256="0" * 64)
    assert "AbortMultipartUpload" in operations
    assert "CompleteMultipartUpload" not in operations
    assert await store.stat("downloads/j/big.ndjson") is None
    assert big.exists()

    operations.clear()
    small = _file(tmp_path / "small.part", b"a few bytes\n")
    with pytest.raises(StorageError, match="nothing was committed"):
        await store.commit_file("downloads/j/small.ndjson", small, sha256="0" * 64)
    assert operations == []  # below one part nothing is sent before the check
    assert small.exists()


@pytest.mark.parametrize("adapter", ["local", "memory", "s3"])
async def test_every_adapter_commits_a_file_and_refuses_bad_keys_and_missing_files(
    adapter: str, s3_server: S3Server, tmp_path: Path
) -> None:
    stores: dict[str, Callable[[], BlobStore]] = {
        "local": lambda: LocalBlobStore(tmp_path / "blobs"),
        "memory": MemoryBlobStore,
        "s3": s3_server.store,
    }
    store = stores[adapter]()
    data = b'{"resourceType":"Observation","id":"o"}\n' * 50
    source = store.staging_path(KEY) or tmp_path / "partial" / "0.part"
    stored = await store.commit_file(KEY, _file(source, data))
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await _read(store, KEY) == data
    assert not source.exists()

    with pytest.raises(FileNotFoundError):
        await store.commit_file("downloads/job-1/1.ndjson", tmp_path / "never-written")
    assert await store.stat("downloads/job-1/1.ndjson") is None
    with pytest.raises(InvalidKey):
        store.staging_path("../outside")
    with pytest.raises(InvalidKey):
        await store.commit_file("../outside", _file(tmp_path / "x", b"x"))
    await store.delete(KEY)
