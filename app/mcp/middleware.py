"""FastMCP middleware: each MCP operation on the request's access line and in metrics."""

from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from functools import partial
from time import perf_counter
from typing import Any

import structlog
from fastmcp.server.dependencies import get_http_request
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import InputRequiredToolResult

from app.http.request_context import REQUEST_ID, access_line
from app.mcp.tools import TOOL_PREFIX
from app.services.catalog import LiveCatalog
from domain.errors import PromptNotFound
from domain.prompts import VERSION_ARGUMENT, split_reference
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.metrics import McpOutcome, Metrics

MAX_NAME = 128
UNKNOWN = "unknown"
NAMED_METHODS = frozenset({"prompts/get", "tools/call"})
NONE = ("", "")  # the name and version labels of a method that names nothing
# FastMCP's hooks, in the order it nests them within one layer: message, kind, method.
HOOKS = (
    "on_message",
    "on_request",
    "on_notification",
    "on_initialize",
    "on_discover",
    "on_call_tool",
    "on_read_resource",
    "on_get_prompt",
    "on_list_tools",
    "on_list_resources",
    "on_list_resource_templates",
    "on_list_prompts",
)
type Hook = Callable[..., Awaitable[Any]]


class MiddlewareLayer(Middleware):
    """Several FastMCP middlewares served as one layer of the server's chain.

    FastMCP wraps every request in a chain of closures for each middleware it is given
    (its ``__call__``, then the message, request and method hooks), whether the middleware
    overrides those hooks or not. Here each hook runs only the parts that override it, in
    the order ``parts`` are given: the parts' message hooks, then their request hooks,
    then their method hooks, as FastMCP nests them within a layer.
    """

    def __init__(self, *parts: Middleware) -> None:
        self.parts = parts
        for hook in HOOKS:
            overriding = [
                getattr(part, hook)
                for part in parts
                if getattr(type(part), hook) is not getattr(Middleware, hook)
            ]
            if overriding:
                setattr(self, hook, _chained(overriding))


def _chained(hooks: list[Hook]) -> Hook:
    """One hook running ``hooks`` in order, each one's ``call_next`` the next of them."""
    if len(hooks) == 1:
        return hooks[0]

    async def chained(context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        handler: CallNext[Any, Any] = call_next
        for hook in reversed(hooks):
            handler = partial(hook, call_next=handler)
        return await handler(context)

    return chained


def outcome_of(result: object) -> McpOutcome:
    """``input_required`` for the first round of a 2026-07-28 round trip, else ``ok``."""
    return "input_required" if isinstance(result, InputRequiredToolResult) else "ok"


def mcp_target(context: MiddlewareContext[Any]) -> str | None:
    """The prompt, tool or resource a request is about, if any (clipped: client input)."""
    message = context.message
    target = getattr(message, "name", None) or getattr(message, "uri", None)
    return str(target)[:MAX_NAME] if target is not None else None


class McpObservabilityMiddleware(Middleware):
    """Each MCP request on its access line, in the log context and in ``Metrics``.

    One FastMCP layer for both: every layer costs every request a chain of wrappers. Put
    it first in the server's middleware list, so it times the whole chain and sees the
    errors later middleware raises (unknown prompt, invalid arguments); errors pass
    through untouched.

    The request id is bound to every log line an MCP handler writes (handlers of a
    stateful session run in the session's task, where the HTTP request's context variables
    are not set). The ``name`` label is the prompt or tool name only when the server has
    it, else ``unknown``, so clients cannot grow the label set; it is empty for methods
    without a name (resource URIs are not labels: templates make them unbounded).
    ``version`` is the catalog version a prompt or generation tool served (a pinned one,
    or the current), and empty when there is none: both come from the catalog serving when
    the request began.
    """

    def __init__(self, metrics: Metrics, catalog: LiveCatalog) -> None:
        self._metrics = metrics
        self._catalog = catalog

    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        method = context.method or UNKNOWN
        named = method in NAMED_METHODS
        catalog = self._catalog.current if named else None
        try:
            scope = get_http_request().scope
        except RuntimeError:  # in-memory transport: no HTTP request
            scope = None
        line = access_line(scope) if scope is not None else None
        if line is not None:
            line.mcp_method = context.method
            line.mcp_name = mcp_target(context)
        bound = (
            structlog.contextvars.bound_contextvars(request_id=scope.get(REQUEST_ID))
            if scope is not None
            else nullcontext()
        )
        started = perf_counter()
        try:
            with bound:
                result = await call_next(context)
        except Exception as exc:
            seconds = perf_counter() - started
            if line is not None:
                line.mcp_outcome = "error"
                line.mcp_error = type(exc).__name__
            name, version = await self._labels(context, catalog, found=False) if named else NONE
            self._metrics.mcp_request(method, name, "error", seconds, version)
            raise
        seconds = perf_counter() - started
        outcome = outcome_of(result)
        if line is not None:
            line.mcp_outcome = outcome
        name, version = await self._labels(context, catalog, found=True) if named else NONE
        self._metrics.mcp_request(method, name, outcome, seconds, version)
        return result

    @staticmethod
    async def _labels(
        context: MiddlewareContext[Any], catalog: PromptCatalog | None, *, found: bool
    ) -> tuple[str, str]:
        message = context.message
        name = getattr(message, "name", None)
        if not isinstance(name, str):
            return UNKNOWN, ""
        arguments = getattr(message, "arguments", None) or {}
        served = catalog_labels(catalog, context.method, name, arguments) if catalog else None
        if served is not None:
            return served
        # Success means the server found the prompt or tool: the name is one of its own.
        return (name, "") if found else (await _known_name(context, name), "")


def catalog_labels(
    catalog: PromptCatalog, method: str | None, name: str, arguments: Mapping[str, Any]
) -> tuple[str, str] | None:
    """The prompt (or tool) and version a request for ``name`` is served by in ``catalog``,
    the version empty when it names none there; None when ``name`` is not the catalog's."""
    if method == "prompts/get":
        prompt, _ = split_reference(name)
        if prompt not in catalog:
            return None
        try:
            return prompt, catalog.resolve(name).version
        except PromptNotFound:
            return prompt, ""
    prompt = name.removeprefix(TOOL_PREFIX)
    if prompt == name or prompt not in catalog:
        return None
    current = catalog.get(prompt)
    if current.definition.generation is None:
        return None
    pinned = arguments.get(VERSION_ARGUMENT)
    if pinned is None or pinned == "":
        return name, current.version
    generating = {e.version for e in catalog.versions(prompt) if e.definition.generation}
    return name, pinned if isinstance(pinned, str) and pinned in generating else ""


async def _known_name(context: MiddlewareContext[Any], name: str) -> str:
    """``name`` if the server has such a prompt or tool, else ``unknown``."""
    if context.fastmcp_context is None:
        return UNKNOWN
    server = context.fastmcp_context.fastmcp
    lookup = server.get_prompt if context.method == "prompts/get" else server.get_tool
    try:
        found = await lookup(name)
    except Exception:  # the request's own error must reach the client, not this one
        return UNKNOWN
    return name if found is not None else UNKNOWN
