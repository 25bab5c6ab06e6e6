"""Pure ASGI middleware: the HTTP-middleware base class costs throughput on every request."""

from starlette.types import ASGIApp, Receive, Scope, Send

MCP_ACCEPT = b"application/json, text/event-stream"


# Headers the SDK compares with the body byte for byte; HTTP says surrounding spaces and
# tabs are not part of a value, and some parsers keep the trailing ones.
_COMPARED = frozenset({b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
_OWS = b" \t"


def _trim(headers: list[tuple[bytes, bytes]]) -> None:
    """Strip optional whitespace around the compared headers, in place."""
    for index, (name, value) in enumerate(headers):
        if name in _COMPARED and value != (stripped := value.strip(_OWS)):
            headers[index] = (name, stripped)


def _accepts_anything(headers: list[tuple[bytes, bytes]]) -> int | None:
    """Index of an ``Accept: */*`` header, ``-1`` when there is none, ``None`` otherwise."""
    for index, (name, value) in enumerate(headers):
        if name == b"accept":
            return index if value.strip() == b"*/*" else None
    return -1


class McpPathMiddleware:
    """Serves ``/mcp`` as ``/mcp/`` in place, because a 307 redirect breaks MCP clients.

    Starlette mounts only match below the mount point, so a POST to ``/mcp`` would be
    redirected; rewriting the path keeps POST bodies and streams intact. A request that
    accepts anything (no ``Accept``, or ``*/*`` as plain curl sends) is told the two media
    types streamable HTTP answers with, instead of being refused with 406. The MCP headers
    the SDK compares with the body lose surrounding whitespace.
    """

    def __init__(self, app: ASGIApp, path: str = "/mcp") -> None:
        self.app = app
        self.path = path
        self.prefix = path + "/"
        self.raw_path = path.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == self.path or path == self.prefix:
            scope = dict(scope)
            scope["path"] = self.prefix
            scope["raw_path"] = self.raw_path + b"/"
            headers: list[tuple[bytes, bytes]] = list(scope["headers"])
            index = _accepts_anything(headers)
            if index is not None:
                if index >= 0:
                    headers[index] = (b"accept", MCP_ACCEPT)
                else:
                    headers.append((b"accept", MCP_ACCEPT))
            _trim(headers)
            scope["headers"] = headers
        await self.app(scope, receive, send)
