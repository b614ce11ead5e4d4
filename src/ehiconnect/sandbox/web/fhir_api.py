"""FHIR R4 read/search/$everything/Binary over a persona's generated record."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
from collections.abc import Iterator
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ehiconnect.sandbox.byte_ranges import UnsatisfiableRangeError, parse_range
from ehiconnect.sandbox.capability import (
    COMPARTMENT_TYPES,
    OBSERVATION_CATEGORIES,
    SERVED_TYPES,
    capability_statement,
)
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.generator import iter_attachment_bytes
from ehiconnect.sandbox.generator.attachments import PIECE, rechunk
from ehiconnect.sandbox.generator.context import Resource
from ehiconnect.sandbox.paging import (
    PageTokenError,
    decode_page_token,
    encode_page_token,
    page_size,
    plan_page,
    search_fingerprint,
)
from ehiconnect.sandbox.presentation import matches_category, search_bundle
from ehiconnect.sandbox.web.common import FHIR_JSON, auth_url, fhir_base, operation_outcome
from ehiconnect.sandbox.web.faults import drop_halfway, fault_response, paced
from ehiconnect.sandbox.web.fhir_access import (
    FhirAccess,
    authorize_fhir,
    forbidden,
    system_and_faults,
)

_PAGING = ("_count", "_page_token")


async def metadata(request: Request) -> Response:
    found = await system_and_faults(request)
    if isinstance(found, Response):
        return found
    system, _ = found
    base = fhir_base(request, system.slug)
    body = capability_statement(system, base, auth_url(request, system.slug, "").rstrip("/"))
    return Response(orjson.dumps(body), media_type=FHIR_JSON)


async def read(request: Request) -> Response:
    access = await authorize_fhir(request)
    if isinstance(access, Response):
        return access
    resource_type = request.path_params["type"]
    if resource_type not in SERVED_TYPES:
        return operation_outcome(404, "not-supported", f"{resource_type} is not served here")
    if not access.scope.allows(resource_type, "r"):
        return forbidden(resource_type, "reading")
    resource = access.record.get(resource_type, request.path_params["id"])
    if resource is None:
        return operation_outcome(
            404, "not-found", f"{resource_type}/{request.path_params['id']} is not known"
        )
    etag = f'W/"{resource["meta"]["versionId"]}"'
    headers = {"ETag": etag}
    if access.system.quirks.include_last_updated:
        headers["Last-Modified"] = _http_date(resource["meta"]["lastUpdated"])
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    shown = access.state.presented.present(
        access.record, resource, access.system.quirks, fhir_base(request, access.system.slug)
    )
    return fault_response(
        access.state, access.faults, orjson.dumps(shown), FHIR_JSON, headers, is_page=False
    )


async def search(request: Request) -> Response:
    access = await authorize_fhir(request)
    if isinstance(access, Response):
        return access
    resource_type = request.path_params["type"]
    params = dict(request.query_params)
    if resource_type not in SERVED_TYPES or resource_type == "Binary":
        return operation_outcome(404, "not-supported", f"search on {resource_type} is not served")
    if not access.scope.allows_search(resource_type, params):
        return forbidden(resource_type, "searching")
    matched = _match(access, resource_type, params)
    if isinstance(matched, Response):
        return matched
    return _page(request, access, f"{resource_type}", params, matched)


async def everything(request: Request) -> Response:
    access = await authorize_fhir(request)
    if isinstance(access, Response):
        return access
    if not access.system.quirks.supports_everything:
        return operation_outcome(
            404,
            "not-supported",
            "this health system does not support Patient/$everything; search each type instead",
        )
    if request.path_params["id"] != access.patient_id:
        return operation_outcome(403, "forbidden", "the access token is for another patient")
    if not access.scope.allows("Patient", "r"):
        return forbidden("Patient", "reading")
    allowed = [r for r in access.record.resources if access.scope.allows(r["resourceType"], "r")]
    params = dict(request.query_params)
    return _page(request, access, f"Patient/{access.patient_id}/$everything", params, allowed)


def _match(
    access: FhirAccess, resource_type: str, params: dict[str, str]
) -> list[Resource] | Response:
    candidates = access.record.of_type(resource_type)
    patient = params.get("patient") or params.get("subject")
    if patient is not None:
        if resource_type not in COMPARTMENT_TYPES or resource_type == "Patient":
            return operation_outcome(400, "not-supported", f"{resource_type} has no patient param")
        if patient.removeprefix("Patient/") != access.patient_id:
            return operation_outcome(403, "forbidden", "the access token is for another patient")
    elif resource_type not in COMPARTMENT_TYPES and "_id" not in params:
        return operation_outcome(
            400, "not-supported", f"search {resource_type} by _id, or read it by reference"
        )
    if "_id" in params:
        ids = set(params["_id"].split(","))
        candidates = [r for r in candidates if r["id"] in ids]
    if "category" in params:
        candidates = [
            r for r in candidates if matches_category(r, set(params["category"].split(",")))
        ]
    elif (
        resource_type == "Observation"
        and access.system.quirks.observation_category_required
        and "_id" not in params
    ):
        return operation_outcome(
            400,
            "required",
            "Observation searches need a category parameter here, e.g. category="
            + ",".join(OBSERVATION_CATEGORIES),
        )
    return candidates


def _page(
    request: Request,
    access: FhirAccess,
    path: str,
    params: dict[str, str],
    resources: list[Resource],
) -> Response:
    quirks = access.system.quirks
    base = fhir_base(request, access.system.slug)
    fingerprint = search_fingerprint(path, params)
    try:
        size = page_size(params.get("_count"), quirks.default_page_size, quirks.max_page_size)
        token = params.get("_page_token")
        offset = decode_page_token(token, fingerprint) if token else 0
    except PageTokenError as exc:
        return operation_outcome(400, "invalid", str(exc))
    except ValueError:
        return operation_outcome(400, "invalid", "_count must be a whole number")
    page, next_offset = plan_page(len(resources), offset, size)
    show = access.state.presented.present
    entries = [
        show(access.record, r, quirks, base)
        for r in resources[page.offset : page.offset + page.size]
    ]
    query = {k: v for k, v in params.items() if k not in _PAGING}
    self_url = f"{base}/{path}?" + urlencode({**query, **_paging(params)})
    next_url = None
    if next_offset is not None:
        next_params = {
            **query,
            "_count": str(size),
            "_page_token": encode_page_token(next_offset, fingerprint),
        }
        next_url = f"{base}/{path}?" + urlencode(next_params)
    body = orjson.dumps(search_bundle(entries, len(resources), base, self_url, next_url))
    return fault_response(access.state, access.faults, body, FHIR_JSON, {}, is_page=True)


def _paging(params: dict[str, str]) -> dict[str, str]:
    return {k: params[k] for k in _PAGING if k in params}


async def binary(request: Request) -> Response:
    """Raw bytes with their Content-Type; a FHIR Binary (base64) for Accept: fhir+json."""
    access = await authorize_fhir(request)
    if isinstance(access, Response):
        return access
    if not (access.scope.allows("Binary", "r") or access.scope.allows("DocumentReference", "r")):
        return forbidden("Binary", "reading")
    spec = access.record.attachments.get(request.path_params["id"])
    if spec is None:
        return operation_outcome(
            404, "not-found", f"Binary/{request.path_params['id']} is not known"
        )
    faults = access.faults
    drop = access.state.draw(faults.drop_connection_share)
    accept = request.headers.get("accept", "")
    headers = {"ETag": f'"{spec.binary_id}-{spec.size}"', "Cache-Control": "private"}
    status = 200
    if "fhir+json" in accept or accept.startswith("application/json"):
        head = (
            orjson.dumps(
                {"resourceType": "Binary", "id": spec.binary_id, "contentType": spec.content_type}
            )[:-1]
            + b',"data":"'
        )
        total = len(head) + 4 * ((spec.size + 2) // 3) + 2
        pieces = _json_binary(head, rechunk(iter_attachment_bytes(spec), 3 * (1 << 18)))
        media_type = FHIR_JSON
    else:
        headers["Accept-Ranges"] = "bytes"
        try:
            wanted = parse_range(request.headers.get("range"), spec.size)
        except UnsatisfiableRangeError:
            return operation_outcome(
                416,
                "invalid",
                f"range outside the {spec.size} bytes of this Binary",
                {"Content-Range": f"bytes */{spec.size}"},
            )
        start, stop = (wanted.start, wanted.stop) if wanted else (0, spec.size)
        if wanted:
            status = 206
            headers["Content-Range"] = wanted.content_range(spec.size)
        total = stop - start
        pieces = iter_attachment_bytes(spec, start, stop)
        media_type = spec.content_type
    headers["Content-Length"] = str(total)
    if total <= PIECE and not drop and not _paced_faults(faults):
        # Most attachments (notes, images) are one piece: sent whole, without the task a
        # streamed response starts to watch for the client going away. Same headers and bytes.
        return Response(b"".join(pieces), status, headers, media_type)
    body = paced(pieces, faults)
    stream = drop_halfway(body, total) if drop else body
    return StreamingResponse(stream, status_code=status, headers=headers, media_type=media_type)


def _paced_faults(faults: Faults) -> bool:
    return bool(faults.binary_first_byte_delay_ms) or faults.binary_bytes_per_s is not None


def _json_binary(head: bytes, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """`{"resourceType":"Binary",...,"data":"<base64>"}` streamed; pieces are 3-byte aligned."""
    yield head
    for piece in pieces:
        yield base64.b64encode(piece)
    yield b'"}'


def _http_date(instant: str) -> str:
    when = dt.datetime.strptime(instant, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return email.utils.format_datetime(when, usegmt=True)
