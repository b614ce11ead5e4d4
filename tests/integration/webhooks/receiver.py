"""A webhook receiver for tests: a real ASGI app served on a loopback port.

It records every request (headers, body, arrival time) and answers with the next scripted status
(then `default_status`), so tests can make it fail a given number of times.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
import time
from typing import Any

import orjson


@dataclasses.dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.time()
    client: tuple[str, int] | None = None  # the sender's address and port: one per connection

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def envelope(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


class Receiver:
    def __init__(
        self,
        *,
        default_status: int = 200,
        script: list[int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.default_status = default_status
        self.reply_headers = headers or {}
        self.delay_seconds = 0.0
        self.reply_body: bytes | None = None  # else "status <code>"
        self.script = collections.deque(script or [])
        self.received: list[Received] = []
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.received]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if self.delay_seconds:  # recorded after the delay: a request cut short is not received
            await asyncio.sleep(self.delay_seconds)
        with self._lock:
            client = scope.get("client")
            self.received.append(
                Received(headers, body, time.time(), tuple(client) if client else None)
            )
            status = self.script.popleft() if self.script else self.default_status
        reply = self.reply_body if self.reply_body is not None else f"status {status}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain"),
                    *((k.encode(), v.encode()) for k, v in self.reply_headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply})
