"""uvicorn's HTTP/1.1 protocol with a deadline and a size cap for reading request headers.

uvicorn times out only idle kept-alive connections (``timeout_keep_alive``): a connection
that sends part of a request line or headers and stalls stays open for ever, and httptools,
the parser uvicorn picks, takes headers of any size. ``HeaderGuardProtocol`` adds:

- a deadline (``HeaderLimits.timeout``) for a request's line and headers, counted from the
  connection's start and, on a kept-alive connection, from the first byte after the last
  response; sending byte by byte does not extend it. Past it the connection is closed, after
  a 408 if part of a request had arrived and no response is being written. A connection
  that sent nothing is closed silently (as browsers' speculative pre-connections are).
- a cap (``HeaderLimits.max_bytes``) on a request's line and headers: past it, 431 and
  close. Bytes are counted per socket read (whole reads that end inside headers); a read
  that ends a body and begins the next request's headers is not counted.

The body is not covered: the application reads it, and the body limits cap its size.
``ctxfy serve`` passes the class as uvicorn's ``http=`` option and the limits on its config.
"""

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

logger = structlog.get_logger(__name__)

TIMED_OUT = b"The request's headers did not arrive in time.\n"
TOO_LARGE = b"The request's headers are too large.\n"


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """How long, and how many bytes, a client may take to send a request's line and headers."""

    timeout: float = 10.0
    max_bytes: int = 65_536

    def __post_init__(self) -> None:
        if not self.timeout > 0 or self.max_bytes < 1:
            raise ValueError("header limits must be positive")


class Phase(Enum):
    """Where the parser is in the request stream."""

    BETWEEN = "between"  # before a request's first byte (blank lines are skipped here)
    HEADERS = "headers"  # inside a request line or its headers
    BODY = "body"  # past the headers, until the request ends


class HeaderGuardProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that closes connections slow or lavish in sending headers."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = getattr(config, "header_limits", None)
        self.header_limits = limits if isinstance(limits, HeaderLimits) else HeaderLimits()
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = Phase.BETWEEN
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self._answered():
            # Bytes after the last response: the next request (or blank lines, or the rest
            # of a body answered early), which stop uvicorn's keep-alive timer, start ours.
            self._arm()
        # A read that began in a body may end with headers: only headers' reads count.
        counting = self._deadline is not None and self._phase is not Phase.BODY
        super().data_received(data)
        if counting and self._phase is Phase.HEADERS and self._deadline is not None:
            self._header_bytes += len(data)
            if self._header_bytes > self.header_limits.max_bytes:
                self._refuse(431, TOO_LARGE, "request_headers_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm()  # a pipelined request, behind one still being answered
        self._phase = Phase.HEADERS

    def on_headers_complete(self) -> None:
        self._disarm()
        self._phase = Phase.BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = Phase.BETWEEN
        super().on_message_complete()

    def _answered(self) -> bool:
        """Whether no response is being written (``cycle`` is None until the first request)."""
        cycle = self.cycle
        return cycle is None or cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_bytes = 0
        self._deadline = self.loop.call_later(self.header_limits.timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._phase is Phase.HEADERS:
            self._refuse(408, TIMED_OUT, "request_header_timeout")
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, body: bytes, event: str) -> None:
        if self.transport.is_closing():
            return
        logger.info(event, client=self.client[0] if self.client else None)
        # Mid-response, a status line would corrupt the answer being written: just close.
        if self._answered():
            head = [STATUS_LINE[status]]
            head += [
                name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
            ]
            head.append(
                b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % len(body)
            )
            self.transport.write(b"".join(head) + body)
        self._disarm()
        self.transport.close()
