"""Any FHIR R4 server (HAPI, Medplum, Azure, AWS HealthLake, GCP) via batch/transaction Bundles.

Batches are planned so that every reference resolves on a server that checks them: a resource
travels with, or after, the resources it points at (`sinks.ordering`; the ingest step plans them
because this sink asks for `references_first`). Every resource goes as `PUT <Type>/<id>` (ids
and references mapped by `IdMapper`), so sending the same batch twice updates the same resources
instead of creating copies. `Binary` resources go the same way (JSON with `contentType` and
base64 `data`), except those whose payload was lifted out of the file before ingesting
(`lift_step`): each of those is uploaded first, streamed from storage, as a raw
`PUT Binary/<id>` with its content type (FHIR's Binary REST form), so no Bundle carries it.
Overloaded or failing servers (429, 5xx, network errors) are retried with
backoff; a batch the server rejects raises SinkError with the server's OperationOutcome
diagnostics (never the resources).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal

import httpx

from ehiconnect.storage.port import BlobStore
from ehiconnect.tracker.lift_step import stored_data
from ehiconnect.tracker.sinks.base import Batching, SinkError, TemporarySinkError
from ehiconnect.tracker.sinks.references import IdMapper, rewrite_resource

FHIR_JSON = "application/fhir+json"
DEFAULT_BACKOFF = (0.5, 2.0, 5.0)
DEFAULT_BATCHING = Batching(max_count=200, max_bytes=16 * 1024 * 1024, references_first=True)


def build_bundle(
    resources: Sequence[dict[str, Any]], mapper: IdMapper, bundle_type: str
) -> dict[str, Any]:
    entries = []
    for resource in resources:
        mapped = rewrite_resource(resource, mapper)
        url = f"{mapped['resourceType']}/{mapped['id']}"
        entries.append(
            {"fullUrl": url, "resource": mapped, "request": {"method": "PUT", "url": url}}
        )
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def failed_entries(response_bundle: dict[str, Any]) -> list[str]:
    """Status lines of the entries a batch-response reports as not 2xx."""
    failures = []
    for entry in response_bundle.get("entry") or []:
        status = str((entry.get("response") or {}).get("status", ""))
        if not status.startswith("2"):
            failures.append(status or "no status")
    return failures


class FhirServerSink:
    name = "fhir_server"

    def __init__(
        self,
        base_url: str,
        *,
        bundle_type: Literal["transaction", "batch"] = "transaction",
        mapper: IdMapper | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 60.0,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        batching: Batching = DEFAULT_BATCHING,
        payloads: BlobStore | None = None,
    ) -> None:
        """`payloads`: the tracker's storage, where lifted Binary payloads are read from."""
        self.base_url = base_url.rstrip("/")
        self.batching = batching
        self._payloads = payloads
        self.bundle_type = bundle_type
        self.mapper = mapper or IdMapper()
        self._backoff = tuple(backoff)
        self._http = httpx.AsyncClient(
            auth=auth,
            timeout=httpx.Timeout(timeout),
            headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
        )

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None:
        usable = [r for r in resources if isinstance(r.get("resourceType"), str) and r.get("id")]
        bundled = []
        for resource in usable:
            pointer = stored_data(resource) if resource["resourceType"] == "Binary" else None
            if pointer is None:
                bundled.append(resource)
            else:
                await self._put_payload(resource, pointer[0], pointer[1], batch_key)
        if not bundled:
            return
        bundle = build_bundle(bundled, self.mapper, self.bundle_type)
        response = await self._send_with_retry(lambda: self._http.post(self.base_url, json=bundle))
        if response.status_code >= 400:
            raise SinkError(
                f"FHIR server {self.base_url} refused batch {batch_key} "
                f"({response.status_code}): {_diagnostics(response)}"
            )
        failures = failed_entries(response.json())
        if failures:
            raise SinkError(
                f"FHIR server {self.base_url} failed {len(failures)} of {len(bundled)} entries "
                f"of batch {batch_key} (first: {failures[0]}); check the server's log"
            )

    async def _put_payload(
        self, binary: dict[str, Any], key: str, size: int, batch_key: str
    ) -> None:
        if self._payloads is None:
            raise SinkError(
                "a Binary's data was stored apart from the file but this FHIR server sink has "
                "no access to the tracker's storage; build it with payloads=<the tracker's blobs>"
            )
        payloads = self._payloads
        url = f"{self.base_url}/Binary/{self.mapper.target_id('Binary', str(binary['id']))}"
        headers = {
            "Content-Type": str(binary.get("contentType") or "application/octet-stream"),
            "Content-Length": str(size),
        }

        async def body() -> AsyncIterator[bytes]:
            async for chunk in payloads.open_reader(key):
                yield chunk

        response = await self._send_with_retry(
            lambda: self._http.put(url, content=body(), headers=headers)
        )
        if response.status_code >= 400:
            raise SinkError(
                f"FHIR server {self.base_url} refused Binary upload in batch {batch_key} "
                f"({response.status_code}): {_diagnostics(response)}"
            )

    async def _send_with_retry(
        self, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await send()
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                problem = f"HTTP {response.status_code}"
            if attempt >= len(self._backoff):
                raise TemporarySinkError(
                    f"FHIR server {self.base_url} unavailable after {attempt + 1} tries "
                    f"({problem}); the batch is retried with the ingest step"
                )
            await asyncio.sleep(self._backoff[attempt])
            attempt += 1

    async def close(self) -> None:
        await self._http.aclose()


def _diagnostics(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    issues = body.get("issue") if isinstance(body, dict) else None
    if isinstance(issues, list) and issues:
        texts = [str(i.get("diagnostics") or i.get("code")) for i in issues if isinstance(i, dict)]
        return "; ".join(texts)[:500]
    return response.reason_phrase
