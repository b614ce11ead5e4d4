"""How fast this machine is right now, in the terms the benchmarks depend on.

The load average says whether something else runs; it does not say whether the machine itself
is slower than usual. On a shared VM it can be: in #17's session 11 the same code lost half its
ingest rate within an hour at a load below 2, while sha256 over memory fell from 1.8 to 1.05 GB/s
and the page cache was being emptied under it. `bench/goals.py` prints this probe before and
after its run, so that a table can be judged by the machine it was measured on:

- the interpreter: 3 M additions in a Python loop (ms; the crawl and the ingest are bound by it);
- sha256 over one 2 MiB buffer that stays in the CPU's cache, and over 64 MiB of buffers read
  from memory (GB/s; packaging and the lift hash every byte they write);
- the disk: 512 MiB written with `O_DIRECT` 2 MiB at a time, and the same through the page cache
  with one fsync at the end (GB/s, fsync included; exports and lifted payloads are written the
  first way, most other files the second). Needs 512 MiB free in the temporary directory.

    .venv/bin/python bench/machine.py [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1 << 20
DISK_BYTES = 512 * MIB
BLOCK = 2 * MIB


def interpreter_ms(count: int = 3_000_000) -> float:
    started = time.perf_counter()
    total = 0
    for number in range(count):
        total += number
    return round((time.perf_counter() - started) * 1000, 1)


def sha256_gb_s(buffers: list[bytes], rounds: int) -> float:
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(rounds):
        for buffer in buffers:
            digest.update(buffer)
    seconds = time.perf_counter() - started
    return round(rounds * sum(len(b) for b in buffers) / seconds / 1e9, 2)


def _write_gb_s(path: Path, *, direct: bool) -> float | None:
    """`DISK_BYTES` written in `BLOCK`s and fsynced; None where `O_DIRECT` is refused."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if direct:
        flag = getattr(os, "O_DIRECT", 0)
        if not flag:
            return None
        flags |= flag
    block = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT wants
    block.write(os.urandom(BLOCK))
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return None
    try:
        started = time.perf_counter()
        for offset in range(0, DISK_BYTES, BLOCK):
            os.pwrite(fd, block, offset)
        os.fsync(fd)
        seconds = time.perf_counter() - started
    except OSError:  # e.g. a file system that takes O_DIRECT at open but refuses its writes
        return None
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
        block.close()
    return round(DISK_BYTES / seconds / 1e9, 2)


def append_and_sync(path: Path, size: int) -> dict[str, float]:
    """Seconds to append `size` bytes to a new file through the project's own appender
    (`storage.appender`: `O_DIRECT` where the file system takes it, as the export file and the
    lift's payloads are written) and sync them, nothing else: the disk's share of a step that
    writes that many bytes, measured beside it (bench/export.py, bench/lift.py)."""
    from ehiconnect.storage.appender import BUFFER, open_appender  # only for this figure

    block = bytes(BUFFER)
    path.touch(mode=0o600)  # the appender opens a file that exists, as its callers make it
    started = time.perf_counter()
    appender = open_appender(path, 0)
    try:
        for _ in range(size // len(block)):
            appender.append(block)
        appender.append(block[: size % len(block)])
        appender.sync()
    finally:
        appender.close()
    seconds = time.perf_counter() - started
    path.unlink()
    return {"bytes": size, "seconds": seconds, "mb_per_s": size / seconds / 1e6}


def probe(directory: Path | None = None) -> dict[str, Any]:
    """The machine's figures now (a few seconds)."""
    cached = [os.urandom(BLOCK)]
    from_memory = [os.urandom(BLOCK) for _ in range(32)]
    with tempfile.TemporaryDirectory(dir=directory, prefix="ehiconnect-probe-") as scratch:
        target = Path(scratch) / "probe.bin"
        direct = _write_gb_s(target, direct=True)
        buffered = _write_gb_s(target, direct=False)
    return {
        "at": time.strftime("%H:%M:%S"),
        "load_average": round(os.getloadavg()[0], 2),
        "python_loop_ms": interpreter_ms(),
        "sha256_cached_gb_s": sha256_gb_s(cached, 200),
        "sha256_memory_gb_s": sha256_gb_s(from_memory, 6),
        "disk_direct_gb_s": direct,
        "disk_page_cache_fsync_gb_s": buffered,
    }


def describe(figures: dict[str, Any]) -> str:
    """One line: what a reader of a benchmark table needs to judge the machine it ran on."""
    return (
        f"{figures['at']} load {figures['load_average']}: Python loop (3 M) "
        f"{figures['python_loop_ms']} ms; sha256 {figures['sha256_cached_gb_s']} GB/s in cache, "
        f"{figures['sha256_memory_gb_s']} GB/s from memory; disk {figures['disk_direct_gb_s']} "
        f"GB/s O_DIRECT, {figures['disk_page_cache_fsync_gb_s']} GB/s through the page cache"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = probe()
    print(json.dumps(figures, indent=2) if args.json else describe(figures))


if __name__ == "__main__":
    main()
