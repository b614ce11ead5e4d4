"""Attachment bodies over the crawl's bulk path (stdlib client in a thread) on real loopback."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ehiconnect.clock import FrozenClock
from ehiconnect.crawler import bulk_body
from ehiconnect.crawler.bulk_body import CHUNK_SIZE, READ_AHEAD
from ehiconnect.crawler.fetch import (
    ERROR_BODY_BYTES,
    AdaptiveLimiter,
    FetchError,
    FhirSession,
    OutboundAccess,
)
from ehiconnect.crawler.policy import ConcurrencyBounds, RetryPolicy
from ehiconnect.settings import ExportSettings

BODY = os.urandom(3 * (1 << 20) + 7)
SMALL = BODY[:100_000]  # within one chunk: read with its headers, in the same thread hop
# Several read-ahead batches of chunks, ending part-way into a chunk.
LARGE = os.urandom(CHUNK_SIZE * READ_AHEAD * 3 + 5)


class LoopbackServer:
    """A keep-alive HTTP/1.1 server on loopback: each request's head is recorded and answered by
    `respond`, which returns False to close the connection."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def respond(self, conn: socket.socket) -> bool:
        raise NotImplementedError

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client closed a body it stopped reading
            reader = conn.makefile("rb")
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                self.requests.append(head)
                if not self.respond(conn):
                    return


class RawServer(LoopbackServer):
    """Answers each connection's requests with `body` (keep-alive), or, with `short`, declares
    its length, sends half of it and closes: a body torn off mid-way."""

    def __init__(self, *, short: bool, body: bytes) -> None:
        self.short = short
        self.body = body
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
            + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
        )
        if self.short:
            conn.sendall(self.body[: len(self.body) // 2])
            return False
        conn.sendall(self.body)
        return True


@pytest.fixture
def raw_server(request: pytest.FixtureRequest) -> Iterator[RawServer]:
    short, body = request.param
    server = RawServer(short=short, body=body)
    yield server
    server.sock.close()


def _session(
    port: int, *, max_json_bytes: int = ExportSettings().max_json_response_bytes
) -> FhirSession:
    async def token(rejected: str | None) -> str:
        return "patient-token"

    clock = FrozenClock()
    access = OutboundAccess(
        allow_private=True,
        timeout_seconds=10,
        max_off_base_bytes=1 << 30,
        max_json_bytes=max_json_bytes,
    )
    return FhirSession(
        f"http://127.0.0.1:{port}/fhir",
        token,
        access=access,
        policy=RetryPolicy(max_attempts=3, base_seconds=0, cap_seconds=0),
        limiter=AdaptiveLimiter(ConcurrencyBounds(minimum=1, maximum=2, initial=2)),
        clock=clock,
        deadline=clock.now() + dt.timedelta(hours=1),
    )


@pytest.mark.parametrize(
    "raw_server", [(False, BODY), (False, SMALL), (False, LARGE)], indirect=True
)
async def test_an_attachment_arrives_whole_with_the_token_over_one_kept_connection(
    raw_server: RawServer,
) -> None:
    async with _session(raw_server.port) as session:
        for _ in range(2):
            async with session.stream("Binary/1") as response:
                assert response.headers["content-type"] == "application/pdf"
                body = b"".join([chunk async for chunk in response.aiter_bytes()])
            assert body == raw_server.body
    assert len(raw_server.requests) == 2
    assert all(b"authorization: bearer patient-token" in r.lower() for r in raw_server.requests)
    assert raw_server.connections == 1  # kept alive between the two


@pytest.mark.parametrize("raw_server", [(True, BODY), (True, SMALL), (True, LARGE)], indirect=True)
async def test_a_body_torn_off_before_its_length_is_an_error_not_a_short_attachment(
    raw_server: RawServer,
) -> None:
    received: list[int] = []

    async def read(response: httpx.Response) -> None:
        async for chunk in response.aiter_bytes():
            received.append(len(chunk))

    async with _session(raw_server.port) as session, session.stream("Binary/1") as response:
        with pytest.raises(httpx.RemoteProtocolError, match="short of its Content-Length"):
            await read(response)
    assert sum(received) == len(raw_server.body) // 2


@pytest.mark.parametrize("raw_server", [(False, LARGE)], indirect=True)
async def test_a_body_left_part_read_closes_its_connection_and_the_next_request_gets_a_new_one(
    raw_server: RawServer,
) -> None:
    async with _session(raw_server.port) as session:
        async with session.stream("Binary/1") as response:
            async for chunk in response.aiter_bytes():
                assert chunk == raw_server.body[: len(chunk)]
                break  # the caller stops (a sink refused the attachment as too large)
        async with session.stream("Binary/1") as response:
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body == raw_server.body
    assert raw_server.connections == 2  # the half-read one was not given back for reuse


def _bulk_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("bulk-body")}


class _RecordedThreadSets(bulk_body._ThreadSets):
    """The sets each transport took, in order (the thread pool's identity, not its threads: a
    kept set may still start a thread of its own when a request arrives before its idle thread
    has said it is free)."""

    def __init__(self, keep: int) -> None:
        super().__init__(keep)
        self.taken: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        threads = super().take()
        self.taken.append(threads)
        return threads


@pytest.fixture
def thread_sets(monkeypatch: pytest.MonkeyPatch) -> _RecordedThreadSets:
    """The module's thread sets for this test only: two kept, each take recorded."""
    sets = _RecordedThreadSets(keep=2)
    monkeypatch.setattr(bulk_body, "_THREAD_SETS", sets)
    return sets


@pytest.mark.parametrize("raw_server", [(False, SMALL)], indirect=True)
async def test_a_crawl_has_threads_of_its_own_and_the_next_crawl_takes_them_over(
    raw_server: RawServer, thread_sets: _RecordedThreadSets
) -> None:
    sets = thread_sets

    async def fetch_twice(session: FhirSession) -> None:
        for _ in range(2):
            async with session.stream("Binary/1") as response:
                assert b"".join([c async for c in response.aiter_bytes()]) == raw_server.body

    before = _bulk_threads()
    async with _session(raw_server.port) as first:
        await fetch_twice(first)
        of_first = _bulk_threads() - before
        async with _session(raw_server.port) as second:  # two crawls at once: two sets
            await fetch_twice(second)
            of_second = _bulk_threads() - before - of_first
    assert of_first  # each started threads of its own, none shared
    assert of_second
    first_set, second_set = sets.taken
    assert first_set is not second_set

    async with _session(raw_server.port) as third:  # after both: one of their sets, kept
        await fetch_twice(third)
    assert sets.taken[2] in (first_set, second_set)
    assert sets.taken[2].submit(lambda: 1).result() == 1  # handed back again, not shut down


@pytest.mark.parametrize("raw_server", [(False, LARGE)], indirect=True)
async def test_a_body_read_after_its_crawl_closed_fails_and_its_connection_is_not_kept(
    raw_server: RawServer, thread_sets: _RecordedThreadSets
) -> None:
    sets = thread_sets
    session = _session(raw_server.port)
    await session.__aenter__()
    async with session.stream("Binary/1") as response:
        chunks = response.aiter_bytes()
        assert await anext(chunks) == raw_server.body[:CHUNK_SIZE]
        await session.__aexit__(None, None, None)  # the crawl ends with the body half read
        async with _session(raw_server.port) as next_crawl:  # takes the closed crawl's threads
            with pytest.raises(httpx.ReadError, match="closed before this body was read"):
                async for _ in chunks:
                    pass
            async with next_crawl.stream("Binary/1") as again:
                assert b"".join([c async for c in again.aiter_bytes()]) == raw_server.body
    assert sets.taken[1] is sets.taken[0]  # the next crawl did take them over
    assert raw_server.connections == 2  # the late body's connection was closed, not reused


class ChunkedGzipPageServer(LoopbackServer):
    """Answers every request with one search page, gzip-encoded and sent in chunks without a
    Content-Length, as many FHIR servers send a large Bundle (keep-alive), and a cookie."""

    def __init__(self, page: dict[str, object]) -> None:
        self.encoded = gzip.compress(json.dumps(page).encode())
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
            b"Set-Cookie: session=s3cr3t; Path=/\r\n\r\n"
        )
        for start in range(0, len(self.encoded), 100_000):
            piece = self.encoded[start : start + 100_000]
            conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        return True


async def test_a_search_page_is_read_whole_and_parsed_over_one_kept_connection_and_no_cookie() -> (
    None
):
    # Of random text, so that gzip keeps it larger than a chunk of the bulk path: the page is
    # read in the thread in more than one piece.
    entries = [
        {"resource": {"resourceType": "Observation", "id": str(n), "note": os.urandom(900).hex()}}
        for n in range(2_000)
    ]
    page = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    server = ChunkedGzipPageServer(page)
    try:
        async with _session(server.port) as session:
            for _ in range(2):
                assert await session.get_json("Observation?patient=1") == page
    finally:
        server.sock.close()
    assert len(server.encoded) > CHUNK_SIZE
    assert len(server.requests) == 2
    assert all(b"accept-encoding: gzip" in r.lower() for r in server.requests)
    assert all(b"authorization: bearer patient-token" in r.lower() for r in server.requests)
    assert server.connections == 1
    # The crawl keeps no cookie: the token is its only credential.
    assert not any(b"\r\ncookie:" in r.lower() for r in server.requests)


class OversizedPageServer(LoopbackServer):
    """Answers with a search page past the client's limit: declared (Content-Length) and plain,
    or gzip-encoded and chunked, small on the wire but far larger once decompressed."""

    def __init__(self, *, declared: bool, size: int) -> None:
        self.declared = declared
        filler = "0" * size  # compresses to almost nothing
        self.body = json.dumps({"resourceType": "Bundle", "type": "searchset", "x": filler})
        self.sent = 0
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        data = self.body.encode()
        if self.declared:
            head = f"Content-Length: {len(data)}\r\n\r\n"
        else:
            data = gzip.compress(data)
            head = "Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n" + head.encode())
        for start in range(0, len(data), 65_536):
            piece = data[start : start + 65_536]
            if not self.declared:
                piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            conn.sendall(piece)
            self.sent += len(piece)
        if not self.declared:
            conn.sendall(b"0\r\n\r\n")
        return True


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "gzip-bomb"])
async def test_a_json_response_past_the_limit_is_an_error_naming_the_setting(
    declared: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A health system's JSON body is held in memory to be parsed, so it is bounded (once
    decompressed): past `exports.max_json_response_bytes` the request fails for good, at once
    (a retry would get the same), and no more of it is read."""
    limit = 1 << 20
    server = OversizedPageServer(declared=declared, size=24 << 20)
    try:
        async with _session(server.port, max_json_bytes=limit) as session:
            with caplog.at_level(logging.WARNING), pytest.raises(FetchError) as refused:
                await session.get_json("Observation?patient=1")
    finally:
        server.sock.close()
    assert "exports.max_json_response_bytes" in refused.value.detail
    assert "1,048,576-byte limit" in refused.value.detail
    # In the error report: over our limit (too-costly), not a failure of the health system's.
    [issue] = refused.value.outcome("Observation")["issue"]
    assert (issue["code"], issue["severity"]) == ("too-costly", "error")
    assert len(server.requests) == 1  # not retried
    # The operator sees it too: the host and the limit, not the URL naming the patient.
    logged = [r for r in caplog.records if "max_json_response_bytes" in r.getMessage()]
    assert [(getattr(r, "host", None), getattr(r, "limit", None)) for r in logged] == [
        ("127.0.0.1", limit)
    ]
    assert not any("patient=1" in r.getMessage() for r in caplog.records)
    if declared:  # refused on its declared length, before its body was read
        assert server.sent < 24 << 20


class RefusalThenPageServer(LoopbackServer):
    """Answers the first request with a 503 whose body is `refusal_size` bytes, then a page."""

    PAGE = {"resourceType": "Bundle", "type": "searchset", "total": 0}

    def __init__(self, refusal_size: int) -> None:
        self.refusal = b"x" * refusal_size
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        if len(self.requests) == 1:
            conn.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(self.refusal)}\r\n\r\n".encode()
                + self.refusal
            )
            return True
        page = json.dumps(self.PAGE).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            + f"Content-Length: {len(page)}\r\n\r\n".encode()
            + page
        )
        return True


@pytest.mark.parametrize(
    ("refusal_size", "connections"),
    [(1_000, 1), (ERROR_BODY_BYTES * 1024, 2)],
    ids=["short refusal: connection kept", "long refusal: left unread, connection closed"],
)
async def test_a_refusals_body_is_read_only_up_to_a_bound(
    refusal_size: int, connections: int
) -> None:
    server = RefusalThenPageServer(refusal_size)
    try:
        async with _session(server.port) as session:
            assert await session.get_json("Observation?patient=1") == server.PAGE  # retried
    finally:
        server.sock.close()
    assert len(server.requests) == 2
    assert server.connections == connections
