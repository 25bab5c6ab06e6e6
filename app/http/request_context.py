"""Request IDs, latency and the one access line per request (pure ASGI)."""

import re
import uuid
from time import perf_counter

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services.access_line import AccessLine

REQUEST_ID_PATTERN = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID = "ctxfy.request_id"  # scope key: the request's id (str)
ACCESS_LINE = "ctxfy.access_line"  # scope key: the request's AccessLine

logger = structlog.get_logger("ctxfy.access")


def access_line(scope: Scope) -> AccessLine | None:
    """The access line of this request, shared by reference with every layer."""
    line: AccessLine | None = scope.get(ACCESS_LINE)
    return line


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            if REQUEST_ID_PATTERN.match(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Accepts or makes ``X-Request-ID``, echoes it with ``Server-Timing`` on every response,
    binds it to every log line of the request, and writes one access line when it ends.

    Inner layers fill in ``access_line(scope)`` (principal, MCP method, outcome, LLM call);
    it is shared by reference, so copies of the scope further in still reach it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        request_id = _request_id(scope["headers"])
        line = AccessLine(request_id=request_id)
        scope[REQUEST_ID] = request_id
        scope[ACCESS_LINE] = line
        status = 500
        id_header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = (perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", ()),
                    id_header,
                    (b"server-timing", f"app;dur={elapsed:.1f}".encode("ascii")),
                ]
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_context)
            finally:
                self._write(scope, status, started, line)

    @staticmethod
    def _write(scope: Scope, status: int, started: float, line: AccessLine) -> None:
        client = scope.get("client")
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        log = logger.error if status >= 500 else logger.warning if line.warning else logger.info
        log(
            "request",
            method=scope["method"],
            path=raw_path.decode("latin-1"),
            status=status,
            latency_ms=round((perf_counter() - started) * 1000, 3),
            client=client[0] if client else None,
            **line.fields(),
        )
