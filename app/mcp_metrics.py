"""MCP requests counted and timed by method, prompt or tool name, and outcome."""

from time import perf_counter
from typing import Any

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from infrastructure.metrics import Metrics

UNKNOWN = "unknown"
NAMED_METHODS = frozenset({"prompts/get", "tools/call"})


class McpMetricsMiddleware(Middleware):
    """Records every MCP request in ``Metrics``; errors pass through untouched.

    Put it first in the server's middleware list, so it sees the errors that later
    middleware raises (unknown prompt, invalid arguments) and times the whole chain.

    The ``name`` label is the prompt or tool name only when the server has it, else
    ``unknown``, so clients cannot grow the label set; it is empty for methods without a
    name (resource URIs are not labels: templates make them unbounded).
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        method = context.method or UNKNOWN
        started = perf_counter()
        try:
            result = await call_next(context)
        except Exception:
            seconds = perf_counter() - started
            name = await self._known_name(context) if method in NAMED_METHODS else ""
            self._metrics.mcp_request(method, name, "error", seconds)
            raise
        seconds = perf_counter() - started
        # Success means the server found the prompt or tool: the name is one of its own.
        name = str(getattr(context.message, "name", UNKNOWN)) if method in NAMED_METHODS else ""
        self._metrics.mcp_request(method, name, "ok", seconds)
        return result

    @staticmethod
    async def _known_name(context: MiddlewareContext[Any]) -> str:
        """The requested name if the server has such a prompt or tool, else ``unknown``."""
        name = getattr(context.message, "name", None)
        if not isinstance(name, str) or context.fastmcp_context is None:
            return UNKNOWN
        server = context.fastmcp_context.fastmcp
        lookup = server.get_prompt if context.method == "prompts/get" else server.get_tool
        try:
            found = await lookup(name)
        except Exception:  # the request's own error must reach the client, not this one
            return UNKNOWN
        return name if found is not None else UNKNOWN
