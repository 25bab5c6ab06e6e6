"""Request-body limits, enforced before anything parses a body (pure ASGI).

A body is read up to its cap and handed on whole; one byte more and the request is answered
413 without reading the rest, whether the client declared ``Content-Length`` or streamed
chunks without one. Compressed bodies are refused (415): their size says nothing about what
they expand to.
"""

from dataclasses import dataclass

from mcp.types import INVALID_REQUEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.errors import (
    BodyTooLarge,
    CompressedBody,
    NotJson,
    jsonrpc_error,
    response_for,
)

IDENTITY = (b"", b"identity")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The largest body accepted on REST routes and on ``/mcp``, in bytes."""

    rest: int = 1024 * 1024
    mcp: int = 4 * 1024 * 1024


class BodyLimitMiddleware:
    """Answers 413 past the cap and 415 for compressed bodies; otherwise replays the body."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits, mcp_path: str = "/mcp") -> None:
        self.app = app
        self.limits = limits
        self.mcp_path = mcp_path
        self.mcp_prefix = mcp_path + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        mcp = path == self.mcp_path or path.startswith(self.mcp_prefix)
        limit = self.limits.mcp if mcp else self.limits.rest
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
            elif name == b"content-encoding" and value.strip().lower() not in IDENTITY:
                await self._refuse(scope, receive, send, mcp, CompressedBody())
                return
            elif name == b"content-type" and not mcp and not _is_json(value):
                # REST takes JSON bodies only (the MCP transport checks its own).
                await self._refuse(scope, receive, send, mcp, NotJson())
                return
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, mcp, BodyTooLarge(limit))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                await self.app(scope, replay(message, receive), send)
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, mcp, BodyTooLarge(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, replay(whole, receive), send)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        mcp: bool,
        error: BodyTooLarge | CompressedBody | NotJson,
    ) -> None:
        status = 413 if isinstance(error, BodyTooLarge) else 415
        response = (
            jsonrpc_error(status, INVALID_REQUEST, str(error))
            if mcp
            else response_for(error, scope)
        )
        # The rest of the body is not read: the connection closes after the answer.
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that answers ``first`` once, then whatever the client sends next."""
    pending: list[Message] = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
