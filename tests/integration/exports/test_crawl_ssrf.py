"""Live-mode exports do not follow a health system's data into our network (issue #11, item 2).

A small FHIR server on loopback plays an on-premises health system in live mode. Its FHIR base is
the endpoint the operator configured, so it is trusted. Its record names URLs elsewhere: a cloud
metadata address, a private (here: loopback) server, look-alikes of the base (another port, a
userinfo trick, the base's address written as IPv4-mapped IPv6) and a `next` link to the private
server. A second server on loopback counts every request that reaches it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.tokens import store_tokens
from ehiconnect.db.models import OrgConnection
from ehiconnect.runtime import Runtime
from ehiconnect.smart.client import TokenResponse
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.catalog.conftest import cli_env, run_cli  # noqa: F401 (fixture)
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import drain

pytestmark = pytest.mark.integration

ACCESS_TOKEN = "live-access-token-for-the-test"
PATIENT_ID = "p1"
ON_BASE_BYTES = b"%PDF-1.4 on the health system itself"
INTERNAL_BYTES = b"internal secret"


@dataclass
class Counter:
    """What reached one server: (path, Authorization header or None) per request."""

    seen: list[tuple[str, str | None]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


def internal_app(counter: Counter) -> Starlette:
    """A server inside "our network": answers anything, and counts it."""

    async def anything(request: Request) -> Response:
        counter.seen.append((request.url.path, request.headers.get("authorization")))
        if request.url.path.endswith("/$everything"):
            return JSONResponse({"resourceType": "Bundle", "type": "searchset", "entry": []})
        return Response(INTERNAL_BYTES, media_type="application/pdf")

    return Starlette(routes=[Route("/{path:path}", anything)])


@dataclass
class Ehr:
    """The on-premises health system's FHIR API at `/fhir`; `hostile` are its attachment URLs."""

    counter: Counter = field(default_factory=Counter)
    hostile: list[str] = field(default_factory=list)
    next_link: str | None = None

    def app(self) -> Starlette:
        async def fhir(request: Request) -> Response:
            path = request.url.path
            self.counter.seen.append((path, request.headers.get("authorization")))
            if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
            if path == "/fhir/metadata":
                return JSONResponse(CAPABILITIES)
            if path == f"/fhir/Patient/{PATIENT_ID}":
                return JSONResponse({"resourceType": "Patient", "id": PATIENT_ID})
            if path == f"/fhir/Patient/{PATIENT_ID}/$everything":
                return JSONResponse(self.bundle())
            if path == "/fhir/Binary/on-base":
                return Response(ON_BASE_BYTES, media_type="application/pdf")
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)

        return Starlette(routes=[Route("/fhir/{path:path}", fhir)])

    def bundle(self) -> dict[str, Any]:
        urls = ["Binary/on-base", *self.hostile]
        document = {
            "resourceType": "DocumentReference",
            "id": "doc1",
            "status": "current",
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "content": [
                {"attachment": {"contentType": "application/pdf", "url": url}} for url in urls
            ],
        }
        links = [{"relation": "next", "url": self.next_link}] if self.next_link else []
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": [{"resource": document}],
        }


CAPABILITIES = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {
                    "type": "Patient",
                    "interaction": [{"code": "read"}],
                    "operation": [{"name": "everything"}],
                },
                {"type": "DocumentReference", "interaction": [{"code": "search-type"}]},
                {"type": "Binary", "interaction": [{"code": "read"}]},
            ],
        }
    ],
}


@pytest.fixture
def internal() -> Iterator[tuple[Counter, ThreadedServer]]:
    counter = Counter()
    with serve_in_thread(internal_app(counter)) as server:
        yield counter, server


@pytest.fixture
def ehr() -> Iterator[tuple[Ehr, ThreadedServer]]:
    system = Ehr()
    with serve_in_thread(system.app()) as server:
        yield system, server


ENDPOINT_ID = "onprem-ehr"


async def live_connection(runtime: Runtime, platform: Platform, fhir_base: str) -> str:
    """A live-mode connection to a non-sandbox endpoint at `fhir_base`, with a good token."""
    connection_id = str(uuid.uuid4())
    async with runtime.database.transaction() as session:
        session.add(
            CatalogEndpoint(
                id=ENDPOINT_ID,
                url=fhir_base,
                name="On-premises EHR",
                platform_type="generic",
                sandbox=False,
                source="test",
            )
        )
        session.add(
            OrgConnection(
                org_connection_id=connection_id,
                org_id=platform.org.org_id,
                api_mode="live",
                catalog_endpoint_id=ENDPOINT_ID,
                platform_type="generic",
                status="authorized",
                scope="launch/patient patient/*.rs",
                fhir_base_url=fhir_base,
                source_patient_id=PATIENT_ID,
            )
        )
        await session.flush()
        await store_tokens(
            session,
            runtime.cipher,
            runtime.clock,
            connection_id,
            TokenResponse(
                access_token=ACCESS_TOKEN,
                token_type="Bearer",
                expires_in=3600,
                scope="launch/patient patient/*.rs",
                refresh_token=None,
                patient=PATIENT_ID,
                raw_keys=frozenset(),
            ),
        )
    return connection_id


def live_start(platform: Platform, connection_id: str) -> str:
    response = httpx.post(
        f"{platform.api.url}/v1/bridge/fhir/ehi-export",
        json={"org_connection_id": connection_id},
        auth=platform.auth("live"),
    )
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["task_id"]
    return task_id


def live_get(platform: Platform, path: str) -> httpx.Response:
    return httpx.get(f"{platform.api.url}{path}", auth=platform.auth("live"), timeout=60)


async def run_live_export(
    runtime: Runtime, platform: Platform, connection_id: str
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Export the patient in live mode; (error report outcomes, Binary bytes by source URL)."""
    task_id = live_start(platform, connection_id)
    await drain(runtime)
    done = live_get(platform, f"/v1/bridge/fhir/ehi-export/{task_id}").json()["data"]
    assert done["status"] == "success", done
    [file] = done["files"]
    body = live_get(
        platform, f"/v1/bridge/fhir/ehi-export/{task_id}/download/{file['file_id']}"
    ).content
    binaries: dict[str, bytes] = {}
    for line in body.splitlines():
        resource = orjson.loads(line)
        if resource["resourceType"] == "Binary":
            binaries[resource["meta"]["source"]] = base64.b64decode(resource["data"])
    errors = live_get(platform, f"/v1/bridge/fhir/ehi-export/{task_id}/download/errors")
    outcomes = (
        [orjson.loads(line) for line in errors.content.splitlines()]
        if errors.status_code == 200
        else []
    )
    return outcomes, binaries


def refused_urls(outcomes: list[dict[str, Any]]) -> dict[str, str]:
    """URL → diagnostics of every `security` issue in the error report."""
    found: dict[str, str] = {}
    for outcome in outcomes:
        for issue in outcome["issue"]:
            if issue["code"] == "security":
                found[issue["details"]["text"]] = issue["diagnostics"]
    return found


async def test_live_export_refuses_urls_into_our_network_and_lists_them(
    runtime: Runtime,
    platform: Platform,
    ehr: tuple[Ehr, ThreadedServer],
    internal: tuple[Counter, ThreadedServer],
) -> None:
    system, ehr_server = ehr
    counter, internal_server = internal
    base = f"{ehr_server.url}/fhir"
    ehr_port, internal_port = ehr_server.port, internal_server.port
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    private = f"http://127.0.0.1:{internal_port}/scan"
    other_port = f"http://127.0.0.1:{internal_port}/fhir/Binary/look-alike"
    userinfo = f"http://127.0.0.1:{ehr_port}@127.0.0.1:{internal_port}/fhir/Binary/userinfo"
    mapped = f"http://[::ffff:127.0.0.1]:{ehr_port}/fhir/Binary/mapped"
    next_page = f"http://127.0.0.1:{internal_port}/fhir/Patient/{PATIENT_ID}/$everything"
    system.hostile = [metadata, private, other_port, userinfo, mapped]
    system.next_link = next_page
    connection_id = await live_connection(runtime, platform, base)

    outcomes, binaries = await run_live_export(runtime, platform, connection_id)

    # The export succeeded with what the health system itself served...
    assert binaries == {f"{base}/Binary/on-base": ON_BASE_BYTES}
    # ...and nothing reached the private server, nor the base's host under a look-alike name.
    assert counter.seen == []
    assert "/fhir/Binary/mapped" not in system.counter.paths()
    # Every refused URL is in the error report, with the reason and never a body.
    refused = refused_urls(outcomes)
    assert set(refused) == {metadata, private, other_port, userinfo, mapped, next_page}
    assert "cloud metadata address" in refused[metadata]
    assert "loopback address" in refused[private]
    assert "user:password" in refused[userinfo]
    assert "--allow-private-network" in refused[private]
    assert all(text.startswith("Not fetched: ") for text in refused.values())
    assert not any(INTERNAL_BYTES.decode() in text for text in refused.values())


async def test_an_endpoint_allowed_on_a_private_network_is_fetched_without_the_token(
    runtime: Runtime,
    platform: Platform,
    cli_env: dict[str, str],  # noqa: F811 (fixture)
    ehr: tuple[Ehr, ThreadedServer],
    internal: tuple[Counter, ThreadedServer],
) -> None:
    system, ehr_server = ehr
    counter, internal_server = internal
    base = f"{ehr_server.url}/fhir"
    metadata = "http://169.254.169.254/latest/meta-data/"
    private = f"http://127.0.0.1:{internal_server.port}/documents/1.pdf"
    next_page = f"http://127.0.0.1:{internal_server.port}/fhir/Patient/{PATIENT_ID}/$everything"
    system.hostile = [metadata, private]
    system.next_link = next_page
    connection_id = await live_connection(runtime, platform, base)
    configured = run_cli(
        cli_env, "catalog", "configure", ENDPOINT_ID, "--allow-private-network", "--json"
    )
    assert configured.returncode == 0, configured.stderr
    assert orjson.loads(configured.stdout)["allow_private_network"] is True

    outcomes, binaries = await run_live_export(runtime, platform, connection_id)

    assert binaries == {f"{base}/Binary/on-base": ON_BASE_BYTES, private: INTERNAL_BYTES}
    # The private server was reached, for the attachment and the next page, without the token.
    assert sorted(counter.paths()) == sorted(
        ["/documents/1.pdf", f"/fhir/Patient/{PATIENT_ID}/$everything"]
    )
    assert all(authorization is None for _, authorization in counter.seen)
    # Cloud metadata stays refused even then.
    assert set(refused_urls(outcomes)) == {metadata}
