"""The FHIR-server sink over real HTTP: a spec-following fake for faults, and Medplum."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker.sinks.base import SinkError, TemporarySinkError
from ehiconnect.tracker.sinks.fhir_server import FhirServerSink
from tests.integration.tracker.fake_fhir_server import FakeFhirServer
from tests.integration.tracker.medplum_server import medplum_server
from tests.integration.tracker.records import patient_record


@pytest.fixture
def fhir() -> Iterator[tuple[FakeFhirServer, ThreadedServer]]:
    server = FakeFhirServer()
    with serve_in_thread(server.app()) as running:
        yield server, running


async def test_resources_land_with_consistent_references_and_a_rerun_adds_nothing(
    fhir: tuple[FakeFhirServer, ThreadedServer],
) -> None:
    server, running = fhir
    resources = patient_record("p1", observations=12)
    sink = FhirServerSink(f"{running.url}/fhir", backoff=(0.01,))
    try:
        for start in range(0, len(resources), 5):  # references cross batch boundaries
            await sink.write_batch(resources[start : start + 5], batch_key=f"b{start}")
        stored_once = dict(server.store)
        for start in range(0, len(resources), 5):
            await sink.write_batch(resources[start : start + 5], batch_key=f"b{start}")
    finally:
        await sink.close()

    assert len(server.store) == len(resources) == 16
    assert server.store == stored_once
    assert set(server.versions.values()) == {1}
    assert server.store["Binary/ehi-2002"]["data"] == resources[2]["data"]
    document = server.store["DocumentReference/doc-1"]
    assert document["content"][0]["attachment"]["url"] == "Binary/ehi-2002"
    assert document["author"] == [{"reference": "Practitioner/ehi-1001"}]


async def test_busy_server_is_retried_then_reported_as_temporary(
    fhir: tuple[FakeFhirServer, ThreadedServer],
) -> None:
    server, running = fhir
    resources = patient_record("p1", observations=1)
    sink = FhirServerSink(f"{running.url}/fhir", backoff=(0.01, 0.01))
    try:
        server.fail_next = 2
        await sink.write_batch(resources, batch_key="b0")
        assert server.requests == 3
        server.fail_next = 5
        with pytest.raises(TemporarySinkError, match="unavailable after 3 tries"):
            await sink.write_batch(resources, batch_key="b1")
    finally:
        await sink.close()
    assert len(server.store) == len(resources)


async def test_rejected_transaction_names_the_problem(
    fhir: tuple[FakeFhirServer, ThreadedServer],
) -> None:
    _, running = fhir
    dangling = [
        {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/nobody"}}
    ]
    sink = FhirServerSink(f"{running.url}/fhir")
    try:
        with pytest.raises(SinkError, match="Patient/nobody does not resolve"):
            await sink.write_batch(dangling, batch_key="b0")
    finally:
        await sink.close()


@pytest.fixture(scope="module")
def medplum() -> Iterator[str]:
    with medplum_server() as base:
        yield base


async def test_medplum_takes_a_record_with_its_references_and_binary(medplum: str) -> None:
    resources = patient_record("p7", observations=20)
    sink = FhirServerSink(medplum, bundle_type="transaction")
    try:
        for start in range(0, len(resources), 7):
            await sink.write_batch(resources[start : start + 7], batch_key=f"b{start}")
        for start in range(0, len(resources), 7):  # a re-run
            await sink.write_batch(resources[start : start + 7], batch_key=f"b{start}")
    finally:
        await sink.close()

    with httpx.Client(base_url=medplum, timeout=10) as client:
        found = client.get("/Observation", params={"subject": "Patient/p7", "_total": "accurate"})
        document = client.get("/DocumentReference/doc-1").json()
        author = client.get("/Practitioner/ehi-1001")
        binary = client.get("/Binary/ehi-2002", headers={"Accept": "application/fhir+json"})
    assert found.status_code == 200
    assert found.json()["total"] == 20
    assert document["author"] == [{"reference": "Practitioner/ehi-1001"}]
    assert document["content"][0]["attachment"]["url"] == "Binary/ehi-2002"
    assert author.status_code == 200
    assert binary.status_code == 200
