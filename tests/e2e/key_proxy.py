"""A local proxy that adds a Ctxfy key to each request, for clients that cannot send one.

The MCP conformance suite sends no credentials, and Ctxfy answers every keyless ``/mcp``
request with 401 — which would also make its DNS-rebinding checks pass for the wrong reason.
The proxy works on bytes, so the server sees what the client sent, byte for byte: it
rewrites only the request head, dropping any ``Authorization`` and ``Connection`` field and
adding the key's bearer and ``Connection: close``; the request line and every other field
(``Host``, ``Origin``, ``Mcp-*``, whitespace included) and the body pass unchanged. One
request per connection means it never has to find where a message ends: the response,
SSE streams included, is relayed chunk by chunk until the server closes it, and a client
that hangs up closes its upstream connection too.
"""

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

STOP_TIMEOUT = 10.0
HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024
REPLACED_FIELDS = frozenset({b"authorization", b"connection", b"keep-alive", b"proxy-connection"})
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def with_key(head: bytes, authorization: bytes) -> bytes:
    """``head`` (a request line and fields, ending in a blank line) with the key added."""
    request_line, *fields = head.removesuffix(b"\r\n\r\n").split(b"\r\n")
    kept = [f for f in fields if f.split(b":", 1)[0].strip().lower() not in REPLACED_FIELDS]
    added = [b"Authorization: " + authorization, b"Connection: close"]
    return b"\r\n".join([request_line, *kept, *added]) + b"\r\n\r\n"


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


class KeyProxy:
    """Forwards each connection's one request to ``upstream`` with ``key`` as its bearer."""

    def __init__(self, upstream: tuple[str, int], key: str) -> None:
        self.upstream = upstream
        self.authorization = f"Bearer {key}".encode("latin-1")
        self.connections: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection."""
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self.connections.discard(task)
            await _close(writer)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return  # closed before a whole request head, or a head no server would take
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.write(BAD_GATEWAY)
            return
        try:
            upstream_writer.write(with_key(head, self.authorization))
            relays = {
                asyncio.create_task(_pipe(reader, upstream_writer)),
                asyncio.create_task(_pipe(upstream_reader, writer)),
            }
            # Either side closing ends the exchange: the response is complete, or the
            # client has gone and the server should see it go.
            _, pending = await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
            for relay in pending:
                relay.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await _close(upstream_writer)

    async def serve(self, sock: socket.socket, stop: "asyncio.Future[None]") -> None:
        """Accept connections on ``sock`` until ``stop`` is done, then end every one."""
        server = await asyncio.start_server(self.handle, sock=sock, limit=HEAD_LIMIT)
        try:
            await stop
        finally:
            server.close()
            for connection in list(self.connections):
                connection.cancel()
            await server.wait_closed()


@dataclass(frozen=True, slots=True)
class RunningProxy:
    """A started proxy: where it listens."""

    port: int

    @property
    def mcp_url(self) -> str:
        """The MCP endpoint through the proxy."""
        return f"http://127.0.0.1:{self.port}/mcp"


@contextmanager
def running_key_proxy(upstream: tuple[str, int], key: str) -> Iterator[RunningProxy]:
    """Serve a :class:`KeyProxy` for ``upstream`` on a free 127.0.0.1 port, in a thread.

    The socket is listening before the thread starts, so clients may connect at once; on
    exit every connection is closed and the thread joined (bounded by ``STOP_TIMEOUT``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port: int = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    stop: asyncio.Future[None] = loop.create_future()
    proxy = KeyProxy(upstream, key)
    thread = threading.Thread(
        target=loop.run_until_complete, args=(proxy.serve(sock, stop),), name="key-proxy"
    )
    thread.start()
    try:
        yield RunningProxy(port=port)
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(timeout=STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the key proxy did not stop within {STOP_TIMEOUT}s")
        loop.close()
        sock.close()
