"""A bound on the HTTP requests one worker serves at once (pure ASGI).

With ``limit`` requests in flight, the next one is answered at once — 503 with
``Retry-After``, REST's error body or a JSON-RPC error on ``/mcp`` — instead of waiting
behind the others for as long as they take. uvicorn's own ``limit_concurrency`` is not
used: it counts idle kept-alive connections too, refuses probes alike, and answers plain text.

- Exempt paths (the probes and ``/metrics``) are neither counted nor refused, so an
  orchestrator still sees a full worker as alive and a scrape still reports the refusals.
- An MCP event stream (``GET`` on ``/mcp``, where the SDK serves only the standalone
  ``text/event-stream``, or a 2026-07-28 ``subscriptions/listen`` POST, whose response is
  the stream) is admitted like any request, so it is refused at the bound, but holds no
  slot while open: it waits for notifications rather than working, and every client may
  keep one, so counting them would let idle clients starve real work. A listen is known by
  its ``Mcp-Method`` header, which the SDK refuses unless it is the body's method.
- The count is per process: each worker has its own bound.
"""

from collections.abc import Callable, Collection

from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.errors import Overloaded, jsonrpc_error, response_for, rule_for
from app.http.request_context import access_line
from infrastructure.metrics import Surface

# JSON-RPC leaves -32000..-32099 to servers; -32005 is "limit exceeded" in EIP-1474's table,
# the closest thing to a convention. The HTTP status and Retry-After say the rest.
JSONRPC_OVERLOADED = -32005


LISTEN = b"subscriptions/listen"
MODERN_VERSIONS = frozenset(v.encode("ascii") for v in MODERN_PROTOCOL_VERSIONS)


def event_stream(scope: Scope) -> bool:
    """Whether a request to ``/mcp`` opens an event stream (see the module docstring)."""
    if scope["method"] == "GET":
        return True
    listen = modern = False
    for name, value in scope["headers"]:
        if name == b"mcp-method":
            listen = value == LISTEN
        elif name == b"mcp-protocol-version":
            modern = value in MODERN_VERSIONS  # only then does the SDK check Mcp-Method
    return listen and modern


class OverloadMiddleware:
    """Answers 503 with ``Retry-After`` once ``limit`` requests are in flight."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        on_refusal: Callable[[Surface], None],
        exempt: Collection[str] = (),
        mcp_path: str = "/mcp",
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.app = app
        self.limit = limit
        self.on_refusal = on_refusal
        self.exempt = frozenset(exempt)
        self.mcp_path = mcp_path
        self.mcp_prefix = mcp_path + "/"
        rule = rule_for(Overloaded)
        if rule is None:
            raise LookupError("Overloaded needs its row in the error table")
        # /mcp answers with the table's status and headers too, in a JSON-RPC body.
        self._mcp_status = rule.status
        self._mcp_headers = dict(rule.headers(Overloaded()))
        # One event loop per process and no await between test and change: no lock needed.
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path in self.exempt:
            await self.app(scope, receive, send)
            return
        mcp = path == self.mcp_path or path.startswith(self.mcp_prefix)
        if self.in_flight >= self.limit:
            await self._refuse(scope, receive, send, mcp)
            return
        if mcp and event_stream(scope):
            await self.app(scope, receive, send)  # admitted, holds no slot
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, mcp: bool) -> None:
        error = Overloaded()
        self.on_refusal("mcp" if mcp else "rest")
        line = access_line(scope)
        if line is not None:
            line.refused = error.code
        if mcp:
            response = jsonrpc_error(self._mcp_status, JSONRPC_OVERLOADED, str(error))
            response.headers.update(self._mcp_headers)
        else:
            response = response_for(error, scope)
        await response(scope, receive, send)
