"""At most ``CTXFY_MCP_MAX_SESSIONS_PER_KEY`` stateful MCP sessions per key in a process.

An ``initialize`` without a session id opens a session; when the key already holds its cap,
it is refused with 429 and a JSON-RPC error before the MCP app runs, and the key's existing
sessions carry on. Refusing (rather than closing the key's oldest idle session) keeps every
session a client holds working until it closes it (``DELETE``) or it idles out
(``CTXFY_MCP_SESSION_IDLE_SECONDS``, which ``Retry-After`` names as the longest wait). Opens
racing each other can pass the check together, so a key can briefly hold a few more.
"""

import math
from collections.abc import Callable

from mcp.types import INVALID_REQUEST
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.errors import jsonrpc_error
from app.http.jsonrpc_guard import JSONRPC_CALL, JsonRpcCall
from app.http.security import PRINCIPAL
from app.mcp.sessions import McpSessions
from domain.keys import Principal

SESSION_HEADER = b"mcp-session-id"


class SessionCapMiddleware:
    """Refuses a key's session past its cap with 429 (runs after the JSON-RPC guard)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: McpSessions,
        per_key: int,
        idle_seconds: float,
        on_refusal: Callable[[], None],
        mcp_path: str = "/mcp",
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.per_key = per_key
        self.retry_after = str(max(1, math.ceil(idle_seconds)))
        self.on_refusal = on_refusal
        self.paths = (mcp_path, mcp_path + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._refused(scope):
            self.on_refusal()
            response = jsonrpc_error(
                429,
                INVALID_REQUEST,
                f"This key holds {self.per_key} MCP sessions, the most it may; close one "
                "(DELETE with its Mcp-Session-Id) or let one idle out.",
            )
            response.headers["Retry-After"] = self.retry_after
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refused(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST" or not self.sessions.stateful:
            return False
        if scope["path"] not in self.paths:
            return False
        call = scope.get(JSONRPC_CALL)
        principal = scope.get(PRINCIPAL)
        if not isinstance(call, JsonRpcCall) or call.method != "initialize":
            return False
        if not isinstance(principal, Principal):
            return False
        if any(name == SESSION_HEADER for name, _ in scope["headers"]):
            return False
        return self.sessions.held_by(principal.key_id) >= self.per_key
