"""A small, patient crawler for the tests: what a platform crawl does, minus storage."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ehiconnect.sandbox.capability import COMPARTMENT_TYPES, OBSERVATION_CATEGORIES
from ehiconnect.sandbox.generator import NON_COMPARTMENT_TYPES
from tests.integration.sandbox.smart_app import SmartApp

TRANSIENT = {429, 500, 502, 503}


@dataclass
class CrawlStats:
    requests: int = 0
    retries: int = 0
    refreshes: int = 0
    pages: int = 0


@dataclass
class Crawler:
    """Follows next links, refreshes on 401, retries transient failures (faults included)."""

    app: SmartApp
    tokens: dict[str, Any]
    stats: CrawlStats = field(default_factory=CrawlStats)
    max_attempts: int = 12

    @property
    def patient(self) -> str:
        return str(self.tokens["patient"])

    def get(self, url: str, **params: Any) -> httpx.Response:
        for _ in range(self.max_attempts):
            self.stats.requests += 1
            try:
                response = self.app.get(self.tokens["access_token"], url, **params)
                if response.status_code == 200 and "json" in response.headers["content-type"]:
                    json.loads(response.content)
            except (httpx.TransportError, json.JSONDecodeError):
                self.stats.retries += 1
                continue
            if response.status_code == 401:
                self._refresh()
                continue
            if response.status_code in TRANSIENT:
                self.stats.retries += 1
                time.sleep(min(float(response.headers.get("retry-after", "0")), 0.05))
                continue
            return response
        raise AssertionError(f"gave up on {url} after {self.max_attempts} attempts")

    def _refresh(self) -> None:
        self.stats.refreshes += 1
        response = self.app.refresh(self.tokens["refresh_token"])
        assert response.status_code == 200, response.text
        self.tokens = response.json()

    def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        response = self.get(path, **params)
        while True:
            assert response.status_code == 200, response.text
            bundle = response.json()
            self.stats.pages += 1
            found += [entry["resource"] for entry in bundle.get("entry", [])]
            next_url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), None)
            if next_url is None:
                return found
            response = self.get(next_url)

    def crawl(self, *, everything: bool, count: int | None = None) -> dict[tuple[str, str], Any]:
        extra = {"_count": count} if count else {}
        resources: list[dict[str, Any]] = []
        if everything:
            resources = self.pages(f"Patient/{self.patient}/$everything", **extra)
        else:
            resources.append(self.get(f"Patient/{self.patient}").json())
            for resource_type in COMPARTMENT_TYPES[1:]:
                if resource_type == "Observation":
                    for category in OBSERVATION_CATEGORIES:
                        resources += self.pages(
                            "Observation", patient=self.patient, category=category, **extra
                        )
                else:
                    resources += self.pages(resource_type, patient=self.patient, **extra)
        found = {(r["resourceType"], r["id"]): r for r in resources}
        assert len(found) == len(resources), "a resource came back twice"
        self._hydrate(found)
        return found

    def _hydrate(self, found: dict[tuple[str, str], Any]) -> None:
        pending = [ref for r in list(found.values()) for ref in references(r)]
        while pending:
            kind, _, ident = pending.pop().partition("/")
            if (kind, ident) in found or kind not in NON_COMPARTMENT_TYPES:
                continue
            response = self.get(f"{kind}/{ident}")
            assert response.status_code == 200, response.text
            found[(kind, ident)] = response.json()
            pending += references(found[(kind, ident)])

    def attachment_sha256(self, url: str) -> tuple[str, int, str]:
        absolute = url if url.startswith("http") else f"{self.app.fhir_base}/{url}"
        for _ in range(self.max_attempts):
            digest = hashlib.sha256()
            size = 0
            try:
                with self.app.http.stream(
                    "GET",
                    absolute,
                    headers={"Authorization": f"Bearer {self.tokens['access_token']}"},
                ) as response:
                    if response.status_code == 401:
                        self._refresh()
                        continue
                    if response.status_code in TRANSIENT:
                        continue
                    for chunk in response.iter_bytes(1 << 20):
                        digest.update(chunk)
                        size += len(chunk)
                    return digest.hexdigest(), size, response.headers["content-type"]
            except httpx.TransportError:
                continue
        raise AssertionError(f"could not download {url}")


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        for item in value.values():
            found += references(item)
        return found
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    return []
