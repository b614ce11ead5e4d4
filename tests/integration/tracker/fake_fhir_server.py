"""A spec-following FHIR transaction endpoint for sink tests (POST [base] with a Bundle).

Follows R4 where the sink depends on it: `transaction` is all-or-nothing and every reference in
it must resolve (to the server's store or to an entry of the bundle), `batch` answers per entry;
`PUT Type/id` creates or updates (a version only when the content changed), also as
`PUT Binary/id` with raw content (FHIR's Binary REST form); ids must be valid FHIR ids and, like
HAPI's default, not all digits. `GET [base]/Type` returns a searchset with a total.
Faults: `fail_next` answers that many requests with 503.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def _outcome(status: int, text: str) -> JSONResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }
    return JSONResponse(body, status_code=status, media_type="application/fhir+json")


def _references(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and (
                key == "reference" or (key == "url" and value.startswith("Binary/"))
            ):
                found.append(value)
            else:
                found.extend(_references(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_references(item))
    return found


@dataclass
class FakeFhirServer:
    store: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type/id" → resource
    versions: dict[str, int] = field(default_factory=dict)
    fail_next: int = 0
    requests: int = 0
    raw_binaries: dict[str, bytes] = field(default_factory=dict)  # id → bytes of raw PUTs

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/fhir", self._bundle, methods=["POST"]),
                Route("/fhir/{kind}", self._search, methods=["GET"]),
                Route("/fhir/Binary/{rid}", self._put_raw_binary, methods=["PUT"]),
            ]
        )

    async def _search(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        matches = [r for key, r in self.store.items() if key.startswith(f"{kind}/")]
        return JSONResponse(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "entry": [{"resource": r} for r in matches],
            }
        )

    async def _put_raw_binary(self, request: Request) -> Response:
        """FHIR's Binary REST form: the body is the content, Content-Type its type."""
        self.requests += 1
        rid = request.path_params["rid"]
        if not _ID.match(rid) or rid.isdigit():
            return _outcome(400, f"invalid client-assigned id {rid!r}")
        body = await request.body()
        if len(body) != int(request.headers.get("content-length", -1)):
            return _outcome(400, "body shorter than its Content-Length")
        self.raw_binaries[rid] = body
        resource = {
            "resourceType": "Binary",
            "id": rid,
            "contentType": request.headers.get("content-type"),
            "data": base64.b64encode(body).decode(),
        }
        status = self._put(resource)
        return JSONResponse(
            {"resourceType": "Binary", "id": rid}, status_code=int(status.split()[0])
        )

    async def _bundle(self, request: Request) -> Response:
        self.requests += 1
        if self.fail_next:
            self.fail_next -= 1
            return _outcome(503, "server busy")
        bundle = await request.json()
        kind = bundle.get("type")
        if bundle.get("resourceType") != "Bundle" or kind not in ("transaction", "batch"):
            return _outcome(400, "expected a transaction or batch Bundle")
        entries = bundle.get("entry") or []
        in_bundle = {e["request"]["url"] for e in entries if "request" in e}
        problems = [self._problem(e, in_bundle) for e in entries]
        if kind == "transaction":
            first = next((p for p in problems if p), None)
            if first:
                return _outcome(400, first)
            results = [self._put(e["resource"]) for e in entries]
        else:
            results = [
                (p and f"400 {p}") or self._put(e["resource"])
                for e, p in zip(entries, problems, strict=True)
            ]
        return JSONResponse(
            {
                "resourceType": "Bundle",
                "type": f"{kind}-response",
                "entry": [{"response": {"status": r}} for r in results],
            }
        )

    def _problem(self, entry: dict[str, Any], in_bundle: set[str]) -> str | None:
        request, resource = entry.get("request") or {}, entry.get("resource") or {}
        url = f"{resource.get('resourceType')}/{resource.get('id')}"
        if request.get("method") != "PUT" or request.get("url") != url:
            return f"entry must PUT {url}"
        rid = str(resource.get("id"))
        if not _ID.match(rid) or rid.isdigit():
            return f"invalid client-assigned id {rid!r} (all-digit ids are not allowed)"
        for ref in _references(resource):
            if _REF.match(ref) and ref not in self.store and ref not in in_bundle:
                return f"reference {ref} does not resolve"
        return None

    def _put(self, resource: dict[str, Any]) -> str:
        key = f"{resource['resourceType']}/{resource['id']}"
        if self.store.get(key) == resource:
            return "200 OK"
        created = key not in self.store
        self.store[key] = resource
        self.versions[key] = self.versions.get(key, 0) + 1
        return "201 Created" if created else "200 OK"
