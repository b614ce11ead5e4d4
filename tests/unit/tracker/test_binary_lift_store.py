"""Lifting into a store: the same objects however a store takes them, nothing left on failure."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import threading
from pathlib import Path

import orjson
import pytest

from ehiconnect.fhir.binary import binary_line_parts
from ehiconnect.storage import appender
from ehiconnect.storage.appender import Appender, open_appender
from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.storage.memory import MemoryBlobStore
from ehiconnect.storage.port import BlobStore
from ehiconnect.tracker import payload_writer
from ehiconnect.tracker.binary_lift import LiftError
from ehiconnect.tracker.lift_step import lift_file, stored_data
from ehiconnect.tracker.payload_writer import LiftBusy, open_payload

THRESHOLD = 256
KEY = "downloads/job/0.ndjson"


def binary_line(binary_id: str, payload: bytes) -> bytes:
    return b"".join(binary_line_parts(binary_id, "image/png", None, [payload]))


def small(number: int) -> bytes:
    return orjson.dumps({"resourceType": "Observation", "id": f"o{number}"}) + b"\n"


async def put(store: BlobStore, key: str, data: bytes) -> None:
    async with store.open_writer(key) as writer:
        await writer.write(data)


async def read(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.open_reader(key)])


def hidden_files(root: Path) -> list[Path]:
    return [path for path in root.rglob(".*") if path.is_file()]


@pytest.fixture(params=["direct", "page-cache"])
def appender_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Payloads written straight to the disk where it can (`O_DIRECT`), and through the page
    cache as where the file system refuses it (flushed every 64 KiB, so that small payloads go
    through the flushes too)."""
    if request.param == "page-cache":
        monkeypatch.setattr(
            payload_writer, "open_appender", functools.partial(open_appender, direct=False)
        )
        monkeypatch.setattr(appender, "_FLUSH_EVERY", 64 * 1024)
    return str(request.param)


@pytest.mark.usefixtures("appender_kind")
@pytest.mark.parametrize("chunk_size", [1000, 4096, 1024 * 1024])
async def test_a_local_store_gets_the_same_objects_as_a_streaming_one(
    tmp_path: Path, chunk_size: int
) -> None:
    first, second = os.urandom(300_001), os.urandom(2_000_000)
    export = small(1) + binary_line("a", first) + small(2) + binary_line("b", second) + small(3)
    local = LocalBlobStore(tmp_path / "store", chunk_size=chunk_size)
    memory = MemoryBlobStore(chunk_size=chunk_size)
    for store in (local, memory):
        await put(store, KEY, export)

    lifted = [await lift_file(store, KEY, THRESHOLD) for store in (local, memory)]

    assert lifted[0] == lifted[1]
    assert lifted[0].payload_keys == [
        "downloads/job/0.binary/2.bin",
        "downloads/job/0.binary/4.bin",
    ]
    assert await read(local, lifted[0].ingest_key) == await read(memory, lifted[1].ingest_key)
    lines = (await read(local, lifted[0].ingest_key)).splitlines()
    pointers = [stored_data(orjson.loads(line)) for line in lines]
    assert pointers == [
        None,
        ("downloads/job/0.binary/2.bin", len(first), hashlib.sha256(first).hexdigest()),
        None,
        ("downloads/job/0.binary/4.bin", len(second), hashlib.sha256(second).hexdigest()),
        None,
    ]
    for key, payload in zip(lifted[0].payload_keys, (first, second), strict=True):
        assert await read(local, key) == payload
        assert await read(memory, key) == payload
    assert hidden_files(tmp_path / "store") == []  # no staging or temporary file left


async def test_a_damaged_payload_leaves_no_object_and_no_staging_file(tmp_path: Path) -> None:
    good = os.urandom(200_000)
    damaged = binary_line("b", os.urandom(200_000)).replace(b'"}', b'!!"}', 1)
    store = LocalBlobStore(tmp_path / "store", chunk_size=4096)
    await put(store, KEY, small(1) + binary_line("a", good) + damaged)

    with pytest.raises(LiftError, match="line 3"):
        await lift_file(store, KEY, THRESHOLD)

    assert await store.stat("downloads/job/0.binary/3.bin") is None
    assert await store.stat("downloads/job/0.ingest.ndjson") is None
    assert hidden_files(tmp_path / "store") == []


async def test_a_rerun_after_a_killed_lift_overwrites_its_staging_file(tmp_path: Path) -> None:
    payload = os.urandom(100_000)
    store = LocalBlobStore(tmp_path / "store")
    await put(store, KEY, small(1) + binary_line("a", payload))
    staging = store.staging_path("downloads/job/0.binary/2.bin")
    staging.parent.mkdir(parents=True)
    staging.write_bytes(os.urandom(500_000))  # what a SIGKILLed run left, longer than the payload

    lifted = await lift_file(store, KEY, THRESHOLD)

    assert await read(store, lifted.payload_keys[0]) == payload
    line = (await read(store, lifted.ingest_key)).splitlines()[1]
    assert stored_data(orjson.loads(line)) == (
        lifted.payload_keys[0],
        len(payload),
        hashlib.sha256(payload).hexdigest(),
    )
    assert not staging.exists()


async def test_a_second_run_of_the_same_payload_stops_while_the_first_writes(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path / "store")
    key = "downloads/job/0.binary/2.bin"
    first = await open_payload(store, key)
    await first.write([b"abc", b"def"])

    with pytest.raises(LiftBusy, match="another run is lifting"):
        await open_payload(store, key)

    stored = await first.commit()
    assert (stored.size, stored.sha256) == (6, hashlib.sha256(b"abcdef").hexdigest())
    assert await read(store, key) == b"abcdef"
    again = await open_payload(store, key)  # the lock went with the first run
    await again.discard(asyncio.CancelledError())
    assert await read(store, key) == b"abcdef"  # a discarded rerun leaves the object as it was


async def test_a_failed_commit_leaves_no_staging_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "store")
    await put(store, KEY, small(1) + binary_line("a", os.urandom(100_000)))

    async def disk_full(key: str, path: Path, *, sha256: str | None = None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "commit_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        await lift_file(store, KEY, THRESHOLD)

    assert await store.stat("downloads/job/0.binary/2.bin") is None
    assert hidden_files(tmp_path / "store") == []


def lift_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("lift-")]


@pytest.mark.parametrize("damaged", [False, True])
async def test_a_lift_ends_its_stage_threads_whether_it_succeeds_or_fails(
    tmp_path: Path, damaged: bool
) -> None:
    line = binary_line("a", os.urandom(300_000))
    if damaged:
        line = line.replace(b'"}', b'!!"}', 1)
    store = LocalBlobStore(tmp_path / "store", chunk_size=4096)
    await put(store, KEY, small(1) + line + small(3))

    if damaged:
        with pytest.raises(LiftError):
            await lift_file(store, KEY, THRESHOLD)
    else:
        await lift_file(store, KEY, THRESHOLD)

    assert lift_threads() == []  # each lift's decode, hash and write threads went with it


async def test_a_staged_payload_holds_at_most_two_blocks_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    append_all = payload_writer._append_all

    def held_write(appender: Appender, pieces: list[bytes]) -> None:
        release.wait(10)  # the disk stalls until the test lets it go
        append_all(appender, pieces)

    monkeypatch.setattr(payload_writer, "_append_all", held_write)
    store = LocalBlobStore(tmp_path / "store")
    key = "downloads/job/0.binary/2.bin"
    payload = await open_payload(store, key)
    await payload.write([b"abc"])
    await payload.write([b"def"])  # a second block waits in the write thread's queue

    third = asyncio.ensure_future(payload.write([b"ghi"]))
    await asyncio.sleep(0.2)
    assert not third.done()  # not handed over while two blocks are in flight
    release.set()
    await third

    stored = await payload.commit()
    assert (stored.size, stored.sha256) == (9, hashlib.sha256(b"abcdefghi").hexdigest())
    assert await read(store, key) == b"abcdefghi"
