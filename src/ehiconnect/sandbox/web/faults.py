"""Applying a health system's live faults to FHIR requests and responses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.sandbox.web.common import operation_outcome


class SimulatedConnectionDropError(Exception):
    """Raised on purpose after half a body was sent, so the server closes the connection."""


async def request_faults(state: SandboxState, faults: Faults) -> Response | None:
    """Latency, then maybe a 429 or a 5xx instead of the real answer."""
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if state.draw(faults.rate_limit_share):
        return operation_outcome(
            429,
            "throttled",
            "too many requests; retry after the Retry-After delay",
            {"Retry-After": str(faults.retry_after_s)},
        )
    if faults.server_error_statuses and state.draw(faults.server_error_share):
        status = state.pick(faults.server_error_statuses)
        return operation_outcome(status, "transient", f"simulated upstream failure ({status})")
    return None


def fault_response(
    state: SandboxState,
    faults: Faults,
    body: bytes,
    media_type: str,
    headers: dict[str, str],
    *,
    is_page: bool,
) -> Response:
    """The real response, or a broken version of it if a body fault is drawn."""
    if is_page and state.draw(faults.malformed_json_share):
        return Response(body[: max(1, len(body) // 2)], 200, headers, media_type)
    if state.draw(faults.drop_connection_share):
        return DroppedBodyResponse(body, media_type, headers)
    return Response(body, 200, headers, media_type)


class DroppedBodyResponse(Response):
    """Announces the full Content-Length, sends half the body, then drops the connection."""

    def __init__(self, body: bytes, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(body, 200, headers, media_type)
        self._full = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self._full[: len(self._full) // 2],
                "more_body": True,
            }
        )
        raise SimulatedConnectionDropError("connection dropped mid-body (sandbox fault)")


async def drop_halfway(pieces: AsyncIterator[bytes], total: int) -> AsyncIterator[bytes]:
    """Pass pieces through until half of `total` bytes were sent, then drop the connection."""
    sent = 0
    half = total // 2
    async for piece in pieces:
        if sent + len(piece) >= half:
            yield piece[: half - sent]
            raise SimulatedConnectionDropError("connection dropped mid-body (sandbox fault)")
        sent += len(piece)
        yield piece


async def paced(pieces: Iterator[bytes], faults: Faults) -> AsyncIterator[bytes]:
    """Stream pieces, after the first-byte delay and within the byte rate, if any."""
    if faults.binary_first_byte_delay_ms:
        await asyncio.sleep(faults.binary_first_byte_delay_ms / 1000)
    rate = faults.binary_bytes_per_s
    for piece in pieces:
        if rate is None:
            yield piece
            continue
        step = max(1024, rate // 10)
        for start in range(0, len(piece), step):
            chunk = piece[start : start + step]
            yield chunk
            await asyncio.sleep(len(chunk) / rate)


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from printing a traceback for every simulated connection drop."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, SimulatedConnectionDropError):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


def silence_simulated_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())
