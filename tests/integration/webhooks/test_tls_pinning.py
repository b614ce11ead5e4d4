"""Over real TLS: the guarded client connects to the checked IP while the certificate is still
verified against the endpoint's host name (SNI), so pinning does not weaken HTTPS."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ehiconnect.http import ssrf
from ehiconnect.testing.servers import free_port
from ehiconnect.webhooks.wire import WireConnections
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

HOST = "hooks.example.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for HOST; (ca, cert, key) PEM paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(HOST))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, int, Path]]:
    ca, cert, key = make_certificates(tmp_path)
    receiver = Receiver()
    port = free_port()
    config = uvicorn.Config(
        receiver,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "TLS receiver did not start"
        time.sleep(0.02)
    yield receiver, port, ca
    server.should_exit = True
    thread.join(10)


async def resolve_to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"] if host == HOST else []


async def test_pinned_https_request_verifies_the_certificate_for_the_host_name(
    tls_receiver: tuple[Receiver, int, Path],
) -> None:
    receiver, port, ca = tls_receiver
    trusting = ssl.create_default_context(cafile=str(ca))
    async with ssrf.guarded_client(
        allow_private=True,
        timeout_seconds=5,
        resolver=resolve_to_loopback,
        inner=httpx.AsyncHTTPTransport(verify=trusting),
    ) as client:
        response = await client.post(f"https://{HOST}:{port}/hooks", content=b"{}")
    assert response.status_code == 200
    (got,) = receiver.received
    assert got.headers["host"] == f"{HOST}:{port}"


async def test_a_certificate_for_another_name_is_still_refused(
    tls_receiver: tuple[Receiver, int, Path],
) -> None:
    receiver, port, ca = tls_receiver
    other = "other.example.test"

    async def resolve(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"] if host == other else []

    trusting = ssl.create_default_context(cafile=str(ca))
    async with ssrf.guarded_client(
        allow_private=True,
        timeout_seconds=5,
        resolver=resolve,
        inner=httpx.AsyncHTTPTransport(verify=trusting),
    ) as client:
        with pytest.raises(httpx.ConnectError, match=r"(?i)certificate|hostname"):
            await client.post(f"https://{other}:{port}/hooks", content=b"{}")
    assert receiver.received == []


async def test_the_senders_h11_client_verifies_the_certificate_for_the_host_name(
    tls_receiver: tuple[Receiver, int, Path],
) -> None:
    # The webhook sender's own client (webhooks/wire.py, #17) connects to the checked address
    # too, and verifies the certificate against the name, not the address.
    receiver, port, ca = tls_receiver
    connections = _wire(ssl.create_default_context(cafile=str(ca)), resolve_to_loopback)
    try:
        for _ in range(2):
            answer = await connections.post(
                f"https://{HOST}:{port}/hooks", b"{}", {}, allow_private=True, max_bytes=100
            )
            assert answer.status_code == 200
    finally:
        await connections.aclose()
    first, second = receiver.received
    assert first.headers["host"] == f"{HOST}:{port}"
    assert first.client == second.client  # kept alive over TLS too


async def test_the_senders_h11_client_refuses_a_certificate_for_another_name(
    tls_receiver: tuple[Receiver, int, Path],
) -> None:
    receiver, port, ca = tls_receiver
    other = "other.example.test"

    async def resolve(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"] if host == other else []

    connections = _wire(ssl.create_default_context(cafile=str(ca)), resolve)
    try:
        with pytest.raises(httpx.ConnectError, match=r"(?i)certificate|hostname"):
            await connections.post(
                f"https://{other}:{port}/hooks", b"{}", {}, allow_private=True, max_bytes=100
            )
        # And without the test CA, the system's CAs do not vouch for the receiver at all.
        untrusting = _wire(None, resolve_to_loopback)
        try:
            with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
                await untrusting.post(
                    f"https://{HOST}:{port}/hooks", b"{}", {}, allow_private=True, max_bytes=100
                )
        finally:
            await untrusting.aclose()
    finally:
        await connections.aclose()
    assert receiver.received == []


def _wire(context: ssl.SSLContext | None, resolver: ssrf.Resolver) -> WireConnections:
    return WireConnections(
        timeout_seconds=5,
        resolver=resolver,
        headers={},
        idle_per_receiver=2,
        keepalive_seconds=4,
        ssl_context=context,
    )
