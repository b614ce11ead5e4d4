"""The sender's h11 client (webhooks/wire.py, #17) against a loopback server that answers with
scripted bytes: how an answer is framed decides what is read and whether the connection is kept;
the SSRF guard, the read cap and the one timeout hold as with httpx."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from ehiconnect.http.ssrf import CappedResponse, Resolver, TargetRefused, system_resolver
from ehiconnect.testing.servers import free_port
from ehiconnect.webhooks.wire import WireConnections, request_bytes

pytestmark = pytest.mark.integration

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


@dataclasses.dataclass
class Request:
    peer: tuple[str, int]  # the client's end of the connection
    local: str  # the address it connected to
    head: bytes
    body: bytes


class ScriptedServer:
    """Answers each request with the next scripted reply (then `default`); `None` as a reply
    closes the connection without answering, `b"..."` followed by close with `close_after`."""

    def __init__(self, *replies: bytes | None, default: bytes = NO_CONTENT) -> None:
        self.replies = list(replies)
        self.default = default
        self.requests: list[Request] = []
        self.close_after: set[int] = set()  # request numbers (from 0) after which to close
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        local = writer.get_extra_info("sockname")[0]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                number = len(self.requests)
                self.requests.append(Request(peer, local, head, body))
                reply = self.replies.pop(0) if self.replies else self.default
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if number in self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def peers(self) -> list[tuple[str, int]]:
        return [r.peer for r in self.requests]


@contextlib.asynccontextmanager
async def serving(server: ScriptedServer, *hosts: str) -> AsyncIterator[ScriptedServer]:
    # One port on every host (port 0 would give each its own).
    server.port = free_port()
    listening = await asyncio.start_server(server.handle, list(hosts or ["127.0.0.1"]), server.port)
    async with listening:
        yield server


@contextlib.asynccontextmanager
async def client(
    *, timeout: float = 5, resolver: Resolver = system_resolver
) -> AsyncIterator[WireConnections]:
    connections = WireConnections(
        timeout_seconds=timeout,
        resolver=resolver,
        headers={"user-agent": "ehiconnect-webhooks/1", "content-type": "application/json"},
        idle_per_receiver=4,
        keepalive_seconds=4,
    )
    try:
        yield connections
    finally:
        await connections.aclose()


async def post(connections: WireConnections, url: str, *, max_bytes: int = 1024) -> CappedResponse:
    return await connections.post(
        url, b'{"a":1}', {"webhook-id": "msg_1"}, allow_private=True, max_bytes=max_bytes
    )


async def test_sends_the_headers_a_client_sent_and_reuses_the_connection() -> None:
    async with serving(ScriptedServer()) as server, client() as connections:
        url = f"http://127.0.0.1:{server.port}/hooks?x=1"
        first = await post(connections, url)
        await post(connections, url)

    assert first == CappedResponse(204, b"", False)
    head = server.requests[0].head.decode()
    lines = head.split("\r\n")
    assert lines[0] == "POST /hooks?x=1 HTTP/1.1"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    assert headers == {
        "host": f"127.0.0.1:{server.port}",
        "accept": "*/*",
        "connection": "keep-alive",
        "accept-encoding": "identity",
        "user-agent": "ehiconnect-webhooks/1",
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "content-length": "7",
    }
    assert server.requests[0].body == b'{"a":1}'
    assert len(set(server.peers())) == 1  # the second went over the kept connection


async def test_a_chunked_answer_is_decoded_and_its_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    async with serving(ScriptedServer(chunked)) as server, client() as connections:
        url = f"http://127.0.0.1:{server.port}/hooks"
        answer = await post(connections, url)
        await post(connections, url)
    assert answer == CappedResponse(200, b"hello world", False)
    assert len(set(server.peers())) == 1


async def test_an_answer_ended_by_closing_and_one_saying_close_are_read_then_not_reused() -> None:
    until_close = b"HTTP/1.1 200 OK\r\n\r\nbye"
    saying_close = b"HTTP/1.1 202 Accepted\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    server = ScriptedServer(until_close, saying_close)
    server.close_after = {0, 1}
    async with serving(server), client() as connections:
        url = f"http://127.0.0.1:{server.port}/hooks"
        answers = [await post(connections, url) for _ in range(3)]
    assert [(a.status_code, a.body) for a in answers] == [(200, b"bye"), (202, b"ok"), (204, b"")]
    assert len(set(server.peers())) == 3


async def test_reads_at_most_max_bytes_and_drops_the_connection() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100_000
    async with serving(ScriptedServer(big)) as server, client() as connections:
        url = f"http://127.0.0.1:{server.port}/hooks"
        answer = await post(connections, url, max_bytes=10)
        await post(connections, url)
    assert (answer.status_code, answer.body, answer.truncated) == (200, b"x" * 10, True)
    assert len(set(server.peers())) == 2  # the rest of the big answer was never read


async def test_one_timeout_covers_an_answer_that_trickles() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(100):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)
        writer.close()

    listening = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening, client(timeout=0.5) as connections:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await post(connections, f"http://127.0.0.1:{port}/hooks")
        assert asyncio.get_running_loop().time() - started < 2


async def test_a_new_connection_closed_without_an_answer_fails_and_is_not_sent_again() -> None:
    async with serving(ScriptedServer(None)) as server, client() as connections:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(connections, f"http://127.0.0.1:{server.port}/hooks")
    assert len(server.requests) == 1


async def test_a_kept_connection_closed_by_the_receiver_is_replaced_once() -> None:
    server = ScriptedServer()
    server.close_after = {0}
    async with serving(server), client() as connections:
        url = f"http://127.0.0.1:{server.port}/hooks"
        await post(connections, url)
        await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
        answer = await post(connections, url)
    assert answer.status_code == 204
    assert len(server.requests) == 2
    assert len(set(server.peers())) == 2


async def test_a_malformed_answer_is_a_protocol_error() -> None:
    async with serving(ScriptedServer(b"SMTP ready\r\n\r\n")) as server, client() as connections:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(connections, f"http://127.0.0.1:{server.port}/hooks")


async def test_a_refused_connection_is_a_connect_error() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()
    async with client() as connections:
        with pytest.raises(httpx.ConnectError):
            await post(connections, f"http://127.0.0.1:{port}/hooks")


async def test_the_guard_refuses_private_addresses_unless_allowed() -> None:
    async with serving(ScriptedServer()) as server, client() as connections:
        with pytest.raises(TargetRefused, match="loopback"):
            await connections.post(
                f"http://127.0.0.1:{server.port}/hooks",
                b"{}",
                {},
                allow_private=False,
                max_bytes=10,
            )
    assert server.requests == []


async def test_a_kept_connection_goes_only_to_an_address_the_name_resolves_to_now() -> None:
    answers = {"hooks.example.test": ["127.0.0.1"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    async with (
        serving(ScriptedServer(), "127.0.0.1", "127.0.0.2") as server,
        client(resolver=resolve) as connections,
    ):
        url = f"http://hooks.example.test:{server.port}/hooks"
        await post(connections, url)
        await post(connections, url)
        answers["hooks.example.test"] = ["127.0.0.2"]  # the name moved
        await post(connections, url)
    assert [r.local for r in server.requests] == ["127.0.0.1", "127.0.0.1", "127.0.0.2"]
    assert len(set(server.peers())) == 2
    host = server.requests[2].head.split(b"\r\n")[1]
    assert host == f"host: hooks.example.test:{server.port}".encode()


@pytest.mark.parametrize(
    "header",
    [
        (b"webhook-id", b"msg\r\nx-evil: 1"),
        (b"webhook-id", b"msg\nx"),
        (b"x\r", b"1"),
        (b"a", b"\0"),
    ],
)
def test_a_header_that_would_break_its_line_is_refused(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(httpx.LocalProtocolError):
        request_bytes(b"/hooks", [(b"host", b"a.test"), header], b"")
    assert request_bytes(b"/h", [(b"host", b"a.test")], b"{}") == (
        b"POST /h HTTP/1.1\r\nhost: a.test\r\n\r\n{}"
    )
