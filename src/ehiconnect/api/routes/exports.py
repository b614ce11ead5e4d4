"""Exports: the compat surface (`/v1/bridge/fhir/ehi-export…`) and the FHIR Bulk Data view."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel

from ehiconnect import audit
from ehiconnect.api.deps import PrincipalDep, RuntimeDep
from ehiconnect.api.envelope import ok
from ehiconnect.errors import Gone, InvalidRequest, NotFound
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.runner import download_url
from ehiconnect.exports.service import get_task, request_export
from ehiconnect.exports.states import CANCELLED, EXPIRED, FAILED, PENDING, SUCCESS, status_view
from ehiconnect.exports.storage.port import BlobStore

router = APIRouter(tags=["exports"])

NDJSON = "application/fhir+ndjson"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class ExportRequest(BaseModel):
    org_connection_id: str


@router.post("/bridge/fhir/ehi-export")
async def start_export(
    body: ExportRequest, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Start an export of the connection's records; idempotent while one is pending or retained."""
    task = await request_export(runtime, principal, body.org_connection_id)
    return ok({"task_id": task.task_id, "status": task.status})


@router.get("/bridge/fhir/ehi-export/{task_id}")
async def export_status(
    task_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Status, progress, and on failure `failure_reason` + `failure_description`."""
    async with runtime.database.transaction() as session:
        task = await get_task(session, principal, task_id)
        return ok(status_view(task))


@router.get("/bridge/fhir/ehi-export/{task_id}/download/{file_id}")
async def download(
    task_id: str,
    file_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    range_header: str | None = Header(default=None, alias="range"),
    resource_type: str | None = Query(default=None, alias="type"),
) -> Response:
    """The export file: `Content-Length`, `ETag`, `Range`, and its sha256 in `Repr-Digest`."""
    async with runtime.database.transaction() as session:
        task = await get_task(session, principal, task_id)
        key = _file_key(task, file_id)
        await audit.record(
            session,
            runtime.clock,
            actor=principal.actor,
            action="export.downloaded",
            org_id=task.org_id,
            org_connection_id=task.org_connection_id,
            task_id=task_id,
            detail={"file_id": file_id, "range": range_header, "type": resource_type},
        )
        sha256, size = task.sha256 or "", task.file_size or 0
        if file_id == "errors":
            sha256 = ""
    blobs = runtime.blobs
    info = await blobs.stat(key)
    if info is None:
        raise Gone("the export file is no longer stored; request a new export")
    size = info.size
    if resource_type:
        return StreamingResponse(_lines_of_type(blobs, key, resource_type), media_type=NDJSON)
    presigned = await blobs.presigned_url(key, runtime.settings.exports.presigned_url_seconds)
    if presigned is not None:
        return RedirectResponse(presigned, status_code=302, headers={"Cache-Control": "no-store"})
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{sha256 or info.etag}"',
        "Cache-Control": "private, no-store",
        "Content-Disposition": f'attachment; filename="{key.rsplit("/", 1)[-1]}"',
    }
    if sha256:
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:"
        headers["X-Content-SHA256"] = sha256
    start, end = 0, size
    status = 200
    if range_header:
        parsed = _parse_range(range_header, size)
        if parsed is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        blobs.open_reader(key, start, end), status_code=status, media_type=NDJSON, headers=headers
    )


def _file_key(task: ExportTask, file_id: str) -> str:
    if task.status == EXPIRED:
        raise Gone("this export passed its retention and was deleted; request a new export")
    if task.status != SUCCESS:
        raise NotFound(f"export {task.task_id} has no files (status {task.status})")
    if file_id == task.file_id and task.file_key:
        return task.file_key
    if file_id == "errors" and task.error_key:
        return task.error_key
    raise NotFound(f"export {task.task_id} has no file {file_id}")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        length = int(last)
        return (max(size - length, 0), size) if length > 0 and size > 0 else None
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or start >= end:
        return None
    return start, end


async def _lines_of_type(blobs: BlobStore, key: str, resource_type: str) -> AsyncIterator[bytes]:
    """The file's lines of one resource type (the Bulk Data per-type view)."""
    pending = b""
    async for chunk in blobs.open_reader(key):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line and _type_of(line) == resource_type:
                yield line + b"\n"
    if pending and _type_of(pending) == resource_type:
        yield pending + b"\n"


def _type_of(line: bytes) -> str | None:
    head = line[:64]
    prefix = b'{"resourceType":"'
    if head.startswith(prefix):
        return head[len(prefix) :].split(b'"', 1)[0].decode()
    value = orjson.loads(line).get("resourceType")
    return str(value) if value else None


# ---- FHIR Bulk Data view of the same task -------------------------------------------------


@router.get("/fhir/bulkstatus/{task_id}", tags=["bulk-data"])
async def bulk_status(task_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """Bulk Data status: 202 + `X-Progress`/`Retry-After` while running, then the manifest."""
    async with runtime.database.transaction() as session:
        task = await get_task(session, principal, task_id)
    if task.status == PENDING:
        progress = task.progress
        text = f"{task.phase}: {progress.get('resources', 0)} resources"
        return Response(status_code=202, headers={"X-Progress": text, "Retry-After": "5"})
    if task.status in (FAILED, CANCELLED, EXPIRED):
        return JSONResponse(
            _outcome(task.failure_description or f"the export is {task.status}"),
            status_code=410 if task.status == EXPIRED else 500,
            media_type="application/fhir+json",
        )
    url = download_url(runtime, task.task_id, task.file_id or "")
    by_type: dict[str, int] = task.stats.get("total_by_resource_type", {})
    manifest = {
        "transactionTime": (task.started_at or task.created_at).isoformat(),
        "request": f"{runtime.settings.public_base_url}/v1/bridge/fhir/ehi-export",
        "requiresAccessToken": True,
        "output": [
            {"type": kind, "url": f"{url}?type={kind}", "count": count}
            for kind, count in sorted(by_type.items())
        ],
        "error": (
            [
                {
                    "type": "OperationOutcome",
                    "url": download_url(runtime, task.task_id, "errors"),
                    "count": task.error_count,
                }
            ]
            if task.error_key
            else []
        ),
        "extension": {
            "ehiconnect-file": {"url": url, "sha256": task.sha256, "size": task.file_size}
        },
    }
    return JSONResponse(
        manifest, headers={"Expires": task.expires_at.isoformat() if task.expires_at else ""}
    )


@router.delete("/fhir/bulkstatus/{task_id}", tags=["bulk-data"])
async def bulk_delete(task_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """Cancel a running export, or purge a finished one's files now."""
    blobs = runtime.blobs
    async with runtime.database.transaction() as session:
        task = await get_task(session, principal, task_id)
        if task.status == PENDING:
            task.status = CANCELLED
            task.completed_at = runtime.clock.now()
        elif task.status == SUCCESS:
            for key in (task.file_key, task.error_key):
                if key:
                    await blobs.delete(key)
            task.status = EXPIRED
        else:
            raise InvalidRequest(f"export {task_id} is already {task.status}")
        await audit.record(
            session,
            runtime.clock,
            actor=principal.actor,
            action="export.deleted",
            org_id=task.org_id,
            org_connection_id=task.org_connection_id,
            task_id=task_id,
        )
    return Response(status_code=202)


def _outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }
