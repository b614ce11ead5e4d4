"""Exports: the compat surface (`/v1/bridge/fhir/ehi-export…`) and, from `bulk`, the FHIR Bulk
Data view of the same tasks."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from ehiconnect.api.bodies import Line, RequestBody
from ehiconnect.api.deps import PrincipalDep, RuntimeDep
from ehiconnect.api.envelope import error_response, ok
from ehiconnect.api.openapi import PRIVATE_ERRORS, error_responses
from ehiconnect.api.ranges import (
    DownloadPlan,
    Representation,
    format_http_date,
    plan_download,
)
from ehiconnect.api.routes import bulk
from ehiconnect.errors import Gone, InvalidRequest, NotFound
from ehiconnect.exports.audit_trail import record_task_action
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.ports import ExportPorts
from ehiconnect.exports.service import get_task, request_export
from ehiconnect.exports.states import status_view
from ehiconnect.orgs.credentials import Principal
from ehiconnect.scope import OrgScope
from ehiconnect.storage.port import BlobStore
from ehiconnect.vocabulary import ExportStatus

router = APIRouter(tags=["exports"], responses=PRIVATE_ERRORS | error_responses(409, 410))

NDJSON = "application/fhir+ndjson"
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")


class ExportRequest(RequestBody):
    org_connection_id: Line


@router.post("/bridge/fhir/ehi-export")
async def start_export(
    body: ExportRequest, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Start an export of the connection's records; idempotent while one is pending or retained."""
    task = await request_export(runtime.exports, principal, body.org_connection_id)
    return ok({"task_id": task.task_id, "status": task.status})


@router.get("/bridge/fhir/ehi-export/{task_id}")
async def export_status(
    task_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Status, progress, and on failure `failure_reason` + `failure_description`."""
    async with runtime.exports.database.transaction() as session:
        task = await get_task(session, principal.scope, task_id)
        return ok(status_view(task))


@router.get("/bridge/fhir/ehi-export/{task_id}/download/{file_id}")
@router.head("/bridge/fhir/ehi-export/{task_id}/download/{file_id}", include_in_schema=False)
async def download(
    task_id: str,
    file_id: str,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    resource_type: str | None = Query(default=None, alias="type", max_length=64),
) -> Response:
    """The export file: `Content-Length`, `ETag`, `Last-Modified`, `Range` (with `If-Range`),
    conditional requests, and its sha256 in `Repr-Digest`. HEAD answers the same without a body.
    With `?type=Observation`, only that type's lines (no ranges)."""
    if resource_type is not None and not _RESOURCE_TYPE.fullmatch(resource_type):
        raise InvalidRequest("type must be a FHIR resource type such as Observation")
    ports = runtime.exports
    file = await _stored_file(ports, principal.scope, task_id, file_id)
    conditions: Mapping[str, str] = request.headers
    etag = file.etag
    if resource_type:
        etag = f"{etag}.{resource_type}"  # another representation, so another tag
        conditions = {k: v for k, v in request.headers.items() if k not in ("range", "if-range")}
    headers = _validators(file, etag, whole_file=not resource_type)
    plan = plan_download(
        request.method, conditions, Representation(file.size, etag, last_modified=file.modified)
    )
    refusal = _refusal(plan, headers, file.size)
    if refusal is not None:
        return refusal
    head = request.method == "HEAD"
    if not head:
        await _record_download(ports, principal, file.task, file_id, request, resource_type)
    if resource_type:
        return _lines_answer(ports.blobs, file.key, resource_type, headers, head=head)
    return await _bytes_answer(ports, file, plan, headers, request, head=head)


@dataclass(frozen=True)
class _StoredFile:
    task: ExportTask
    key: str
    size: int
    etag: str  # the export file's sha256, else the store's tag
    sha256: str | None  # the export file's (the error report has none recorded)
    modified: dt.datetime | None


async def _stored_file(
    ports: ExportPorts, scope: OrgScope, task_id: str, file_id: str
) -> _StoredFile:
    """The caller's task's file `file_id`, as stored now; Gone once it is not."""
    async with ports.database.transaction() as session:
        task = await get_task(session, scope, task_id)
        key = _file_key(task, file_id)
    info = await ports.blobs.stat(key)
    if info is None:
        raise Gone("the export file is no longer stored; request a new export")
    sha256 = task.sha256 if file_id == task.file_id else None
    return _StoredFile(task, key, info.size, sha256 or info.etag, sha256, task.completed_at)


def _validators(file: _StoredFile, etag: str, *, whole_file: bool) -> dict[str, str]:
    """The headers every answer about the file carries (304s and errors included)."""
    headers: dict[str, str] = {"Cache-Control": "private, no-store", "ETag": f'"{etag}"'}
    if file.modified is not None:
        headers["Last-Modified"] = format_http_date(file.modified)
    if file.sha256 and whole_file:  # the whole file's digest, on every answer about it
        digest = base64.b64encode(bytes.fromhex(file.sha256)).decode()
        headers["Repr-Digest"] = f"sha-256=:{digest}:"
        headers["X-Content-SHA256"] = file.sha256
    return headers


def _refusal(plan: DownloadPlan, headers: dict[str, str], size: int) -> Response | None:
    """The answer when the request's conditions or range leave nothing to send."""
    if plan.status == 304:
        return Response(status_code=304, headers=headers)
    if plan.status == 412:
        return error_response(
            412,
            "precondition_failed",
            "the file does not match the request's If-Match or If-Unmodified-Since; "
            "fetch it again without them",
            headers,
        )
    if plan.status == 416:
        return error_response(
            416,
            "range_not_satisfiable",
            f"the file has {size} bytes; send one range within them, e.g. bytes=0-",
            {**headers, "Content-Range": f"bytes */{size}"},
        )
    return None


def _lines_answer(
    blobs: BlobStore, key: str, resource_type: str, headers: dict[str, str], *, head: bool
) -> Response:
    """The file's lines of one type (no ranges: the length is known only by filtering it all)."""
    headers["Accept-Ranges"] = "none"
    if head:
        response = Response(headers=headers, media_type=NDJSON)
        del response.headers["content-length"]
        return response
    return StreamingResponse(
        _lines_of_type(blobs, key, resource_type), media_type=NDJSON, headers=headers
    )


async def _bytes_answer(
    ports: ExportPorts,
    file: _StoredFile,
    plan: DownloadPlan,
    headers: dict[str, str],
    request: Request,
    *,
    head: bool,
) -> Response:
    """The file or the range the plan chose: from a presigned store's URL, or from here."""
    # A presigned store serves the bytes itself, Range included; but when we decided to ignore
    # the request's Range (a stale If-Range, several ranges), the whole file comes from here.
    if not head and (plan.status == 206 or "range" not in request.headers):
        seconds = ports.settings.presigned_url_seconds
        presigned = await ports.blobs.presigned_url(file.key, seconds)
        if presigned is not None:
            return RedirectResponse(
                presigned, status_code=302, headers={"Cache-Control": "no-store"}
            )
    headers["Accept-Ranges"] = "bytes"
    headers["Content-Disposition"] = f'attachment; filename="{file.key.rsplit("/", 1)[-1]}"'
    if plan.status == 206:
        headers["Content-Range"] = f"bytes {plan.start}-{plan.end - 1}/{file.size}"
    headers["Content-Length"] = str(plan.length)
    if head:
        return Response(status_code=plan.status, headers=headers, media_type=NDJSON)
    return StreamingResponse(
        ports.blobs.open_reader(file.key, plan.start, plan.end),
        status_code=plan.status,
        media_type=NDJSON,
        headers=headers,
    )


async def _record_download(
    ports: ExportPorts,
    principal: Principal,
    task: ExportTask,
    file_id: str,
    request: Request,
    resource_type: str | None,
) -> None:
    async with ports.database.transaction() as session:
        await record_task_action(
            session,
            ports.clock,
            task,
            "export.downloaded",
            actor=principal.actor,
            detail={
                "file_id": file_id,
                "range": request.headers.get("range", "")[:200] or None,
                "type": resource_type,
            },
        )


def _file_key(task: ExportTask, file_id: str) -> str:
    if task.status == ExportStatus.EXPIRED:
        raise Gone("this export passed its retention and was deleted; request a new export")
    if task.status == ExportStatus.DELETED:
        raise Gone("this export's files were deleted at your request; request a new export")
    if task.status != ExportStatus.SUCCESS:
        raise NotFound(f"export {task.task_id} has no files (status {task.status})")
    if file_id == task.file_id and task.file_key:
        return task.file_key
    if file_id == "errors" and task.error_key:
        return task.error_key
    raise NotFound(f"export {task.task_id} has no file {file_id}")


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


# The FHIR Bulk Data view of the same tasks; its routes answer errors as OperationOutcomes.
router.include_router(bulk.router)
