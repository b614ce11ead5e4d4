"""Benchmark: the sandbox serves its 3 GB attachment at speed with flat memory.

Starts the sandbox in a subprocess, signs in as the huge persona (hugo at harbor) through the
real login and consent pages, then downloads the persona's biggest attachment with the stdlib
`http.client` (`readinto` a 1 MiB buffer) and prints throughput and the sandbox process's
memory: RSS at start, RSS once the persona's record is built (the baseline), and peak RSS
(VmHWM) after the download.

    .venv/bin/python bench/sandbox_attachments.py [--verify] [--json]

`--verify` also compares the SHA-256 of the download with the generator's (adds ~2 s/GB).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from ehiconnect.sandbox.generator import attachment_sha256, expected_attachments
from ehiconnect.sandbox.patient_browser import PatientBrowser
from ehiconnect.sandbox.pkce import s256_challenge
from ehiconnect.testing.servers import free_port

SERVER = (
    "import sys, uvicorn\n"
    "from ehiconnect.sandbox.app import build_sandbox_app\n"
    "uvicorn.run(build_sandbox_app(), host='127.0.0.1', port=int(sys.argv[1]),"
    " log_level='warning', access_log=False)\n"
)
CHUNK = 1 << 20


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the sandbox exited during start-up")
        try:
            httpx.get(base + "/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the sandbox did not start within 30 s")


def sign_in(base: str) -> str:
    """An access token for hugo at harbor, through the real portal pages."""
    fhir = f"{base}/harbor/fhir"
    verifier = "bench-" + "v" * 50
    redirect = "http://127.0.0.1:9/callback"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "ehiconnect-public",
            "redirect_uri": redirect,
            "scope": "launch/patient patient/*.rs",
            "state": "bench",
            "aud": fhir,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client(timeout=30) as client:
        location = PatientBrowser(client).authorize(
            f"{base}/harbor/auth/authorize?{query}", "hugo", "hugo-sandbox"
        )
        code = parse_qs(urlsplit(location).query)["code"][0]
        tokens = client.post(
            f"{base}/harbor/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "code_verifier": verifier,
                "client_id": "ehiconnect-public",
            },
        ).json()
        token: str = tokens["access_token"]
        # Builds the huge persona's record in the server, so the baseline includes it.
        client.get(
            f"{fhir}/Patient/{tokens['patient']}", headers={"Authorization": f"Bearer {token}"}
        )
    return token


def download(
    port: int, path: str, token: str, verify: bool, accept: str | None
) -> tuple[int, float, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    if accept:
        headers["Accept"] = accept
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"download failed: HTTP {response.status} {response.read()[:200]!r}")
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    digest = hashlib.sha256() if verify else None
    total = 0
    started = time.perf_counter()
    while True:
        n = response.readinto(buffer)
        if not n:
            break
        if digest is not None:
            digest.update(view[:n])
        total += n
    elapsed = time.perf_counter() - started
    connection.close()
    return total, elapsed, digest.hexdigest() if digest else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verify", action="store_true", help="check the SHA-256 of the download")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--fhir-json",
        action="store_true",
        help="ask for a FHIR Binary (base64 in JSON, 4/3 the bytes) instead of the raw bytes",
    )
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=os.environ.copy())
    try:
        wait_until_up(base, process)
        at_start = memory_kib(process.pid)
        token = sign_in(base)
        baseline = memory_kib(process.pid)
        spec = max(expected_attachments("harbor", "hugo"), key=lambda s: s.size)
        accept = "application/fhir+json" if args.fhir_json else None
        verify = args.verify and not args.fhir_json
        size, elapsed, digest = download(
            port, f"/harbor/fhir/Binary/{spec.binary_id}", token, verify, accept
        )
        after = memory_kib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)

    expected = spec.size if not args.fhir_json else 4 * ((spec.size + 2) // 3)
    if size < expected:
        raise SystemExit(f"short download: {size} of {expected} bytes")
    verified = None
    if digest is not None:
        verified = digest == attachment_sha256(spec)
    result = {
        "attachment_bytes": size,
        "content_type": "application/fhir+json" if args.fhir_json else spec.content_type,
        "seconds": round(elapsed, 2),
        "throughput_mb_s": round(size / elapsed / 1e6, 1),
        "rss_at_start_mib": round(at_start["VmRSS"] / 1024, 1),
        "rss_baseline_mib": round(baseline["VmRSS"] / 1024, 1),
        "peak_rss_before_download_mib": round(baseline["VmHWM"] / 1024, 1),
        "peak_rss_after_download_mib": round(after["VmHWM"] / 1024, 1),
        "sha256_verified": verified,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"attachment      {size / 1e9:.2f} GB on the wire ({result['content_type']})")
    print(
        f"download        {elapsed:.2f} s, {result['throughput_mb_s']} MB/s "
        "(http.client readinto 1 MiB)"
    )
    print(
        f"sandbox RSS     start {result['rss_at_start_mib']} MiB, "
        f"baseline (record built) {result['rss_baseline_mib']} MiB"
    )
    print(
        f"sandbox peak    before download {result['peak_rss_before_download_mib']} MiB, "
        f"after {result['peak_rss_after_download_mib']} MiB (VmHWM)"
    )
    if verified is not None:
        print(f"sha256          {'matches the generator' if verified else 'MISMATCH'}")
        if not verified:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
