"""``HeaderGuardProtocol`` inside a real uvicorn protocol stack on 127.0.0.1, with raw sockets."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from app.http.header_guard import HeaderGuardProtocol, HeaderLimits
from app.serve import DrainingConfig

pytestmark = pytest.mark.anyio

TIMEOUT = 0.3
MAX_BYTES = 1024
BOUND = 5.0  # no wait below is longer than this
REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
PARTIAL = b"GET / HTTP/1.1\r\nHost: te"


class HeldApp:
    """Answers 200 ``ok``; ``/hold`` answers only once ``release`` is set."""

    def __init__(self) -> None:
        self.holding = anyio.Event()
        self.release = anyio.Event()
        self.served = 0
        self._served = anyio.Event()

    async def until_served(self, count: int) -> None:
        """Return once ``count`` responses have been sent."""
        while self.served < count:
            await self._served.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/hold":
            self.holding.set()
            await self.release.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})
        self.served += 1
        self._served.set()
        self._served = anyio.Event()


async def not_served(scope: Scope, receive: Receive, send: Send) -> None:
    """What the config's import string names; ``guarded`` serves its own app instead."""
    raise AssertionError("not served")


@asynccontextmanager
async def guarded(app: HeldApp, keep_alive: float = BOUND) -> AsyncIterator[int]:
    """uvicorn's HTTP stack on a free port, as ``ctxfy serve`` builds it, serving ``app``."""
    config = DrainingConfig(
        "tests.integration.test_header_guard:not_served",
        drain_seconds=0,
        header_limits=HeaderLimits(timeout=TIMEOUT, max_bytes=MAX_BYTES),
        timeout_keep_alive=keep_alive,
        log_config=None,
        proxy_headers=False,
    )
    config.load()
    config.loaded_app = app  # the test's own instance, not the import string's
    assert config.http_protocol_class is HeaderGuardProtocol
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HeaderGuardProtocol(config, state, {}, loop), "127.0.0.1", 0
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for connection in list(state.connections):
            connection.shutdown()
        await server.wait_closed()


class RecordingTransport(asyncio.Transport):
    """A connection as the protocol sees it, minus the socket: the test feeds each read."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        """Reads are the test's to make."""

    def resume_reading(self) -> None:
        """Reads are the test's to make."""


def connected(app: HeldApp) -> tuple[HeaderGuardProtocol, RecordingTransport]:
    """A protocol serving ``app`` over a transport whose every read the test makes."""
    config = DrainingConfig(
        "tests.integration.test_header_guard:not_served",
        drain_seconds=0,
        header_limits=HeaderLimits(timeout=BOUND, max_bytes=MAX_BYTES),
        log_config=None,
        proxy_headers=False,
    )
    config.load()
    config.loaded_app = app
    protocol = HeaderGuardProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def until_closed(stream: SocketStream) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    received = b""
    with anyio.fail_after(BOUND):
        while True:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return received


async def one_response(stream: SocketStream) -> bytes:
    """One ``content-length: 2`` response, read without waiting for the connection to close."""
    received = b""
    with anyio.fail_after(BOUND):
        while not received.endswith(b"\r\n\r\nok"):
            received += await stream.receive()
    return received


async def test_a_request_stalled_mid_headers_is_answered_408_and_closed_at_the_deadline() -> None:
    async with guarded(HeldApp()) as port, await anyio.connect_tcp("127.0.0.1", port) as client:
        started = time.monotonic()
        await client.send(PARTIAL)
        answer = await until_closed(client)
        waited = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in answer
    assert TIMEOUT * 0.9 <= waited < TIMEOUT + 1


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer() -> None:
    async with guarded(HeldApp()) as port, await anyio.connect_tcp("127.0.0.1", port) as client:
        started = time.monotonic()
        answer = await until_closed(client)

    assert answer == b""
    assert TIMEOUT * 0.9 <= time.monotonic() - started < TIMEOUT + 1


async def test_blank_lines_do_not_hold_a_connection_open() -> None:
    async with guarded(HeldApp()) as port, await anyio.connect_tcp("127.0.0.1", port) as client:
        await client.send(b"\r\n\r\n")
        assert await until_closed(client) == b""


async def test_sending_headers_byte_by_byte_does_not_extend_the_deadline() -> None:
    async with guarded(HeldApp()) as port, await anyio.connect_tcp("127.0.0.1", port) as client:
        started = time.monotonic()
        closed = False
        with anyio.fail_after(BOUND):
            for byte in PARTIAL * 4:
                try:
                    await client.send(bytes([byte]))
                except (anyio.BrokenResourceError, OSError):
                    closed = True
                    break
                await anyio.sleep(TIMEOUT / 10)  # pacing: this client is slow on purpose
        answer = b"" if closed else await until_closed(client)

    assert closed or answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < TIMEOUT + 1


async def test_a_kept_alive_connection_has_the_deadline_again_for_its_next_request() -> None:
    async with guarded(HeldApp()) as port, await anyio.connect_tcp("127.0.0.1", port) as client:
        await client.send(REQUEST)
        first = await one_response(client)
        await client.send(PARTIAL)
        second = await until_closed(client)

    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert second.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


async def test_headers_past_the_cap_are_answered_431_and_closed() -> None:
    oversized = PARTIAL + b"st\r\nX-Padding: " + b"a" * (MAX_BYTES * 2)
    async with guarded(HeldApp()) as port, await anyio.connect_tcp("127.0.0.1", port) as client:
        started = time.monotonic()
        await client.send(oversized)
        answer = await until_closed(client)

    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert time.monotonic() - started < TIMEOUT  # refused on arrival, not at the deadline


async def test_headers_within_the_cap_are_served() -> None:
    padded = b"GET / HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * (MAX_BYTES // 2) + b"\r\n\r\n"
    async with guarded(HeldApp()) as port, await anyio.connect_tcp("127.0.0.1", port) as client:
        await client.send(padded)
        assert (await one_response(client)).startswith(b"HTTP/1.1 200 OK\r\n")


async def test_the_rest_of_a_body_answered_early_is_not_counted_as_headers() -> None:
    app = HeldApp()
    protocol, transport = connected(app)
    body = b"b" * (MAX_BYTES * 3)
    head = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % len(body)
    with anyio.fail_after(BOUND):
        protocol.data_received(head + body[:10])
        await app.until_served(1)  # answered without the body being read
        protocol.data_received(body[10:] + PARTIAL)  # one read: the body's rest, then headers
        refused = transport.closed
        protocol.data_received(b"st\r\n\r\n")
        await app.until_served(2)
    protocol.connection_lost(None)

    assert not refused
    assert transport.written.count(b"HTTP/1.1 200 OK\r\n") == 2


async def test_a_response_slower_than_the_header_deadline_is_not_cut_off() -> None:
    app = HeldApp()
    async with guarded(app) as port, await anyio.connect_tcp("127.0.0.1", port) as slow:
        await slow.send(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
        with anyio.fail_after(BOUND):
            await app.holding.wait()
        # A connection made later than the held request's has reached its own deadline...
        async with await anyio.connect_tcp("127.0.0.1", port) as later:
            assert await until_closed(later) == b""
        # ...so had the held request still been under one, it would have expired too.
        app.release.set()
        answer = await one_response(slow)

    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def test_header_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        HeaderLimits(timeout=0)
    with pytest.raises(ValueError, match="positive"):
        HeaderLimits(max_bytes=0)
