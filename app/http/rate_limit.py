"""Rate limits per key for REST and MCP alike, before any route or the MCP app runs (pure ASGI).

Only authenticated requests are limited (public paths and refused credentials never reach a
bucket), each against exactly one bucket, under its key id:

- generate: ``POST /v1/prompts/{name}/generate`` and MCP ``tools/call`` of a ``generate_*``
  tool (each round of a 2026-07-28 call that asks the client's LLM counts);
- write: every other REST request that changes state (POST, PUT, PATCH, DELETE outside
  ``/v1/prompts/``: key management);
- read: everything else — REST reads and previews, every other MCP message.

A counted request's response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` (seconds); a refused one is 429 with ``Retry-After`` as well: the REST
error body, or on ``/mcp`` a JSON-RPC error. A store that fails closed answers 503.
"""

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.errors import jsonrpc_error, rate_limit_headers, response_for, rule_for
from app.http.jsonrpc_guard import JSONRPC_CALL, JsonRpcCall
from app.http.request_context import access_line
from app.http.security import PRINCIPAL
from app.mcp.tools import TOOL_PREFIX
from domain.keys import Principal
from domain.rate_limits import Bucket, RateDecision, RateLimited, RateLimitUnavailable
from infrastructure.rate_limit import KeyRateLimiter

# JSON-RPC server errors of our own (-32000 to -32099; the MCP SDK's use others).
RATE_LIMITED = -32029
RATE_LIMIT_UNAVAILABLE = -32053
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROMPTS = "/v1/prompts/"
GENERATE_SUFFIX = "/generate"


def bucket_of(scope: Scope, *, mcp: bool) -> Bucket:
    """The bucket an authenticated request counts against."""
    if mcp:
        call = scope.get(JSONRPC_CALL)
        if (
            isinstance(call, JsonRpcCall)
            and call.method == "tools/call"
            and call.tool is not None
            and call.tool.startswith(TOOL_PREFIX)
        ):
            return Bucket.GENERATE
        return Bucket.READ
    if scope["method"] in READ_METHODS:
        return Bucket.READ
    path: str = scope["path"]
    if path.startswith(PROMPTS):
        return Bucket.GENERATE if path.endswith(GENERATE_SUFFIX) else Bucket.READ
    return Bucket.WRITE


def _header_bytes(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in rate_limit_headers(decision).items()
    ]


class RateLimitMiddleware:
    """Counts each authenticated request against its bucket; 429 past the limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: KeyRateLimiter,
        on_limited: Callable[[Bucket], None],
        mcp_path: str = "/mcp",
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.on_limited = on_limited
        self.mcp_path = mcp_path
        self.mcp_prefix = mcp_path + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get(PRINCIPAL) if scope["type"] == "http" else None
        if not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        mcp = path == self.mcp_path or path.startswith(self.mcp_prefix)
        bucket = bucket_of(scope, mcp=mcp)
        try:
            decision = await self.limiter.hit(bucket, principal.key_id)
        except RateLimitUnavailable as unavailable:
            await self._refuse(scope, receive, send, mcp, unavailable)
            return
        if decision is None:
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            self.on_limited(bucket)
            await self._refuse(scope, receive, send, mcp, RateLimited(bucket, decision))
            return
        extra = _header_bytes(decision)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        mcp: bool,
        error: RateLimited | RateLimitUnavailable,
    ) -> None:
        line = access_line(scope)
        if line is not None:
            line.rate_limit = error.bucket if isinstance(error, RateLimited) else "unavailable"
        rule = rule_for(type(error))
        if not mcp or rule is None:
            await response_for(error, scope)(scope, receive, send)
            return
        call = scope.get(JSONRPC_CALL)
        refusal = jsonrpc_error(
            rule.status,
            RATE_LIMITED if isinstance(error, RateLimited) else RATE_LIMIT_UNAVAILABLE,
            str(error),
            message_id=call.id if isinstance(call, JsonRpcCall) else None,
            headers=rule.headers(error),
        )
        if line is not None:
            line.mcp_error = error.code
        await refusal(scope, receive, send)
