"""MCP operations on the request's log: method, prompt or tool name, outcome."""

from typing import Any

import structlog
from fastmcp.server.dependencies import get_http_request
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from app.observability import REQUEST_ID, request_log

MAX_NAME = 128


def mcp_target(context: MiddlewareContext[Any]) -> str | None:
    """The prompt, tool or resource a request is about, if any (clipped: client input)."""
    message = context.message
    target = getattr(message, "name", None) or getattr(message, "uri", None)
    return str(target)[:MAX_NAME] if target is not None else None


class McpLoggingMiddleware(Middleware):
    """Adds the MCP operation to the access line and binds the request id to every log
    line an MCP handler writes (handlers of a stateful session run in the session's task,
    where the HTTP request's context variables are not set)."""

    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        try:
            scope = get_http_request().scope
        except RuntimeError:  # in-memory transport: no HTTP request
            return await call_next(context)
        fields = request_log(scope)
        if fields is not None:
            fields["mcp_method"] = context.method
            target = mcp_target(context)
            if target is not None:
                fields["mcp_name"] = target
        with structlog.contextvars.bound_contextvars(request_id=scope.get(REQUEST_ID)):
            try:
                result = await call_next(context)
            except Exception as exc:
                if fields is not None:
                    fields["mcp_outcome"] = "error"
                    fields["mcp_error"] = type(exc).__name__
                raise
        if fields is not None:
            fields["mcp_outcome"] = "ok"
        return result
