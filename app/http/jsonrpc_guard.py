"""Malformed MCP messages are the client's error, answered alike in both protocol eras.

Before the MCP SDK sees a POST to ``/mcp``, its body must be one JSON-RPC 2.0 message: a
request or notification (``method``), or a response to a server request (``result`` or
``error`` with an ``id``). Anything else is 400 with a fixed JSON-RPC error that never echoes
what was sent (the SDK's own validation messages quote the input). Runs after the body
limit, so the body arrives whole.

A message that passes is described in ``scope[JSONRPC_CALL]`` (its method, the tool a
``tools/call`` names, its id), so layers further in never parse the body again.
"""

from dataclasses import dataclass

import orjson
from mcp.types import INVALID_REQUEST, PARSE_ERROR
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.errors import jsonrpc_error
from app.http.limits import replay

MAX_ID_LENGTH = 256
JSONRPC_CALL = "ctxfy.jsonrpc_call"  # scope key: the POSTed message's JsonRpcCall


@dataclass(frozen=True, slots=True)
class JsonRpcCall:
    """What one well-formed JSON-RPC message asks for."""

    method: str | None  # None: a client's answer to a request of the server
    tool: str | None = None  # the tool a ``tools/call`` names
    id: int | str | None = None


def check(body: bytes) -> JsonRpcCall | tuple[int, str]:
    """What ``body`` asks for, or the JSON-RPC error code and message it deserves."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return PARSE_ERROR, "Parse error: the body is not valid JSON (UTF-8, nesting ≤ 1024)."
    if not isinstance(message, dict):
        return INVALID_REQUEST, "Invalid request: send one JSON-RPC 2.0 message object."
    if message.get("jsonrpc") != "2.0":
        return INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0".'
    request_id = message.get("id")
    if request_id is not None and (
        isinstance(request_id, bool)
        or not isinstance(request_id, int | str)
        or (isinstance(request_id, str) and len(request_id) > MAX_ID_LENGTH)
    ):
        return (
            INVALID_REQUEST,
            f"Invalid request: an id is an integer or a short string (≤ {MAX_ID_LENGTH}).",
        )
    method = message.get("method")
    if method is not None:
        if not isinstance(method, str):
            return INVALID_REQUEST, 'Invalid request: "method" must be a string.'
        params = message.get("params")
        if params is not None and not isinstance(params, dict | list):
            return INVALID_REQUEST, 'Invalid request: "params" must be an object.'
        tool = params.get("name") if method == "tools/call" and isinstance(params, dict) else None
        return JsonRpcCall(method, tool if isinstance(tool, str) else None, request_id)
    if "id" in message and ("result" in message or "error" in message):
        return JsonRpcCall(None, None, request_id)  # an answer to the server (legacy sessions)
    return INVALID_REQUEST, 'Invalid request: a message needs a "method".'


class JsonRpcGuardMiddleware:
    """Answers malformed JSON-RPC bodies on ``/mcp`` with 400 and a fixed error."""

    def __init__(self, app: ASGIApp, *, path: str = "/mcp") -> None:
        self.app = app
        self.path = path
        self.prefix = path + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not (path == self.path or path.startswith(self.prefix))
        ):
            await self.app(scope, receive, send)
            return
        first = await receive()
        found = check(first.get("body", b"")) if first["type"] == "http.request" else None
        if not isinstance(found, tuple):
            if found is not None:
                scope[JSONRPC_CALL] = found
            await self.app(scope, replay(first, receive), send)
            return
        code, text = found
        await jsonrpc_error(400, code, text)(scope, receive, send)
