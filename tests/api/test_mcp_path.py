"""The ``/mcp`` path rewrite hands the MCP app clean headers, whatever the HTTP parser kept."""

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.http.mcp_path import McpPathMiddleware

pytestmark = pytest.mark.anyio


class Recorder:
    """An ASGI app that keeps the scope it was called with."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)


async def nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def ignore(message: Message) -> None:
    return None


async def headers_seen(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    inner = Recorder()
    scope: Scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}
    await McpPathMiddleware(inner)(scope, nothing, ignore)
    (seen,) = inner.scopes
    assert seen["path"] == "/mcp/"
    return dict(seen["headers"])


async def test_whitespace_around_the_headers_the_sdk_compares_is_dropped() -> None:
    seen = await headers_seen(
        [
            (b"mcp-name", b"  generate_adr \t"),
            (b"mcp-method", b"tools/call "),
            (b"mcp-protocol-version", b"\t2026-07-28"),
            (b"x-other", b" kept as sent "),
        ]
    )
    assert seen[b"mcp-name"] == b"generate_adr"
    assert seen[b"mcp-method"] == b"tools/call"
    assert seen[b"mcp-protocol-version"] == b"2026-07-28"
    assert seen[b"x-other"] == b" kept as sent "


async def test_a_client_that_accepts_anything_is_told_both_mcp_media_types() -> None:
    seen = await headers_seen([(b"accept", b"*/*")])
    assert seen[b"accept"] == b"application/json, text/event-stream"
