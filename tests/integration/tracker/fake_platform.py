"""A small platform for tracker tests: the public contract of DESIGN §1/§2 and nothing more.

Serves GET org_connection, POST ehi-export, GET ehi-export status, GET download (Range, ETag, a
sha256 header), checks HTTP Basic credentials, and sends webhooks signed with the
`standardwebhooks` package (an independent implementation of the spec). Test code drives it:
`complete(task_id, body)`, `fail(task_id, reason)`, `send_webhook(...)`, and fault switches.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import standardwebhooks
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

PUBLIC_ID = "public_test_tracker"
PRIVATE_KEY = "private_test_tracker_secret"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"tracker-tests-secret-32-bytes!!!").decode()


@dataclass
class FakeTask:
    task_id: str
    org_connection_id: str
    status: str = "pending"
    body: bytes = b""
    failure_reason: str | None = None


@dataclass
class FakePlatform:
    connections: dict[str, str] = field(default_factory=dict)  # id → status
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    export_requests: int = 0
    download_ranges: list[str | None] = field(default_factory=list)
    cut_next_download_after: int | None = None  # bytes sent before the connection drops
    base_url: str = ""
    redirect_downloads: bool = False  # 302 to a "presigned" URL on another host name
    presigned_authorization: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    brand_names: dict[str, str] = field(
        default_factory=lambda: {"brand-harbor": "Harbor Health (Sandbox)"}
    )

    def add_connection(self, status: str = "authorized") -> str:
        connection_id = str(uuid.uuid4())
        self.connections[connection_id] = status
        return connection_id

    def task_for(self, org_connection_id: str) -> FakeTask:
        return next(t for t in self.tasks.values() if t.org_connection_id == org_connection_id)

    def complete(self, task_id: str, body: bytes) -> dict[str, Any]:
        """Mark the export done with `body` as its file; the success webhook's data."""
        task = self.tasks[task_id]
        task.status, task.body = "success", body
        return {
            "org_connection_id": task.org_connection_id,
            "task_id": task_id,
            "org_id": "org-1",
            "download_links": [
                {
                    "url": f"{self.base_url}/v1/bridge/fhir/ehi-export/{task_id}/download/f1",
                    "export_type": "jsonl",
                    "content_type": "application/fhir+ndjson",
                    "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=24)).isoformat(),
                    "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            ],
            "stats": {"total_resources": body.count(b"\n"), "total_by_resource_type": {}},
        }

    def fail(self, task_id: str, reason: str) -> dict[str, Any]:
        task = self.tasks[task_id]
        task.status, task.failure_reason = "failed", reason
        return {
            "org_connection_id": task.org_connection_id,
            "task_id": task_id,
            "org_id": "org-1",
            "failure_reason": reason,
            "failure_description": f"export failed: {reason}",
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/bridge/org_connection/{cid}", self._connection, methods=["GET"]),
                Route("/v1/bridge/fhir/ehi-export", self._start, methods=["POST"]),
                Route("/v1/bridge/fhir/ehi-export/{tid}", self._status, methods=["GET"]),
                Route("/v1/bridge/fhir/ehi-export/{tid}/download/{fid}", self._download),
                Route("/presigned/{tid}", self._presigned),
                Route("/v1/bridge/catalog", self._catalog, methods=["GET"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{PUBLIC_ID}:{PRIVATE_KEY}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    async def _catalog(self, request: Request) -> Response:
        """The public catalog read: one brand by id (the tracker names the health system)."""
        if request.query_params.get("public_id") != PUBLIC_ID:
            return _error(401, "unauthorized", "unknown public_id")
        brand_id = request.query_params.get("brand_id")
        if brand_id not in self.brand_names:
            return _error(404, "not_found", "no such brand")
        return _ok({"id": brand_id, "name": self.brand_names[brand_id], "portals": []})

    async def _connection(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "send valid credentials")
        cid = request.path_params["cid"]
        if cid not in self.connections:
            return _error(404, "not_found", "no such connection")
        return _ok(
            {
                "org_connection_id": cid,
                "org_id": "org-1",
                "catalog_brand_id": "brand-harbor",
                "catalog_portal_id": "portal-1",
                "catalog_endpoint_id": "endpoint-1",
                "platform_type": "sandbox",
                "api_mode": "test",
                "status": self.connections[cid],
                "scope": "openid fhirUser offline_access patient/*.read",
                "consent_expires_at": None,
            }
        )

    async def _start(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "send valid credentials")
        cid = (await request.json()).get("org_connection_id")
        if cid not in self.connections:
            return _error(404, "not_found", "no such connection")
        with self.lock:
            self.export_requests += 1
            for task in self.tasks.values():
                if task.org_connection_id == cid and task.status == "pending":
                    return _ok({"task_id": task.task_id, "status": "pending"})
            task = FakeTask(task_id=uuid.uuid4().hex, org_connection_id=cid)
            self.tasks[task.task_id] = task
        return _ok({"task_id": task.task_id, "status": "pending"})

    async def _status(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "send valid credentials")
        task = self.tasks.get(request.path_params["tid"])
        if task is None:
            return _error(404, "not_found", "no such task")
        view: dict[str, Any] = {"task_id": task.task_id, "status": task.status, "progress": {}}
        if task.status == "success":
            sha = hashlib.sha256(task.body).hexdigest()
            view["files"] = [{"file_id": "f1", "size": len(task.body), "sha256": sha}]
            view["stats"] = {"total_resources": task.body.count(b"\n")}
        if task.status == "failed":
            view["failure_reason"] = task.failure_reason
            view["failure_description"] = "failed"
        return _ok(view)

    async def _download(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "send valid credentials")
        if self.redirect_downloads:
            port = self.base_url.rsplit(":", 1)[1]
            target = f"http://localhost:{port}/presigned/{request.path_params['tid']}"
            return Response(status_code=302, headers={"Location": target})
        return self._file(request)

    async def _presigned(self, request: Request) -> Response:
        self.presigned_authorization.append(request.headers.get("authorization"))
        return self._file(request)

    def _file(self, request: Request) -> Response:
        task = self.tasks.get(request.path_params["tid"])
        if task is None or task.status != "success":
            return _error(404, "not_found", "no such file")
        body, range_header = task.body, request.headers.get("range")
        self.download_ranges.append(range_header)
        start, status = 0, 200
        sha = hashlib.sha256(body).hexdigest()
        headers = {"ETag": f'"{sha}"', "X-Content-SHA256": sha, "Accept-Ranges": "bytes"}
        if range_header:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                return Response(status_code=416, headers={"Content-Range": f"bytes */{len(body)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        headers["Content-Length"] = str(len(body) - start)
        cut, self.cut_next_download_after = self.cut_next_download_after, None
        return StreamingResponse(
            _chunks(body[start:], cut),
            status_code=status,
            headers=headers,
            media_type="application/fhir+ndjson",
        )

    def send_webhook(
        self,
        url: str,
        event_type: str,
        data: dict[str, Any],
        *,
        msg_id: str | None = None,
        timestamp: dt.datetime | None = None,
        secret: str = WEBHOOK_SECRET,
    ) -> httpx.Response:
        """Sign and POST one webhook, as the platform's delivery worker would."""
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        when = timestamp or dt.datetime.now(dt.UTC)
        body = orjson.dumps(
            {
                "api_mode": "test",
                "date": when.isoformat(),
                "id": msg_id,
                "type": event_type,
                "data": data,
            }
        ).decode()
        signature = standardwebhooks.Webhook(secret).sign(msg_id, when, body)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }
        return httpx.post(url, content=body, headers=headers, timeout=10)


async def _chunks(body: bytes, cut: int | None) -> AsyncIterator[bytes]:
    step = 64 * 1024
    for offset in range(0, len(body), step):
        piece = body[offset : offset + step]
        if cut is not None and offset + len(piece) > cut:
            yield piece[: max(cut - offset, 0)]
            raise ConnectionResetError("fake platform: connection dropped mid-file")
        yield piece


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"success": True, "data": data})


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": code, "error_description": description}, status_code=status
    )
