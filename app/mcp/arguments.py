"""Prompt arguments over MCP: strings on the wire, validated once per ``prompts/get``.

``PromptArgumentsMiddleware`` resolves the prompt (``name`` or ``name@version``) in the live
catalog and validates before FastMCP renders anything; it hands the typed values on as
``ValidatedArguments``, which also name the version they were validated for, so the prompt
renders exactly that version without validating again, even if a reload lands meanwhile.
"""

from collections.abc import Mapping
from typing import Any

from fastmcp.prompts import PromptResult
from fastmcp.server.dependencies import get_http_request
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp import MCPError
from mcp.types import INVALID_PARAMS, GetPromptRequestParams

from app.http.request_context import access_line
from app.services.access_line import AccessLine
from app.services.catalog import LiveCatalog
from domain.errors import InvalidArguments, PromptNotFound, PromptRenderError, PromptVersionNotFound
from domain.prompts import ArgumentType, Scalar
from infrastructure.catalog.catalog import CatalogEntry


class ValidatedArguments(dict[str, Scalar | None]):
    """Arguments ``CatalogEntry.validate`` accepted: typed, defaults filled in."""

    __slots__ = ("entry",)

    def __init__(self, values: Mapping[str, Scalar | None], entry: CatalogEntry) -> None:
        super().__init__(values)
        self.entry = entry  # the version these were validated for


def request_line() -> AccessLine | None:
    """The access line of the HTTP request carrying this MCP call, if there is one."""
    try:
        return access_line(get_http_request().scope)
    except RuntimeError:  # in-memory transport: no HTTP request
        return None


def mcp_arguments(entry: CatalogEntry, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """MCP sends every argument as a string; an empty one for a non-string means unset."""
    arguments: dict[str, Any] = {}
    for name, value in (raw or {}).items():
        declared = entry.definition.argument(name)
        unset = value is None or (
            value == "" and declared is not None and declared.type is not ArgumentType.STRING
        )
        if not unset:
            arguments[name] = value
    return arguments


def validated(entry: CatalogEntry, raw: Mapping[str, Any] | None) -> ValidatedArguments:
    """``raw`` as ``entry`` accepts it; raises ``InvalidArguments``."""
    if isinstance(raw, ValidatedArguments) and raw.entry is entry:
        return raw
    return ValidatedArguments(entry.validate(mcp_arguments(entry, raw)), entry)


def invalid_params(error: InvalidArguments | PromptRenderError | PromptNotFound) -> MCPError:
    """The JSON-RPC error a client gets for a prompt or arguments that do not fit."""
    data: dict[str, Any] | None = None
    if isinstance(error, InvalidArguments):
        fields = [{"field": e.field, "message": e.message, "type": e.type} for e in error.errors]
        data = {"prompt": error.prompt, "errors": fields}
    elif isinstance(error, PromptVersionNotFound):
        data = {"prompt": error.name, "version": error.version, "versions": list(error.available)}
    elif isinstance(error, PromptRenderError):
        data = {"prompt": error.prompt}
    return MCPError(code=INVALID_PARAMS, message=str(error), data=data)


class PromptArgumentsMiddleware(Middleware):
    """Rejects unknown prompts, versions and bad arguments with INVALID_PARAMS before FastMCP
    renders anything, and names the version served on the access line.

    Raising here, rather than in ``render``, keeps a client's mistake out of the
    server's error log (FastMCP logs every render failure with a traceback).
    """

    def __init__(self, catalog: LiveCatalog) -> None:
        self._catalog = catalog

    async def on_get_prompt(
        self,
        context: MiddlewareContext[GetPromptRequestParams],
        call_next: CallNext[GetPromptRequestParams, PromptResult],
    ) -> PromptResult:
        message = context.message
        try:
            entry = self._catalog.current.resolve(message.name)
        except PromptNotFound as exc:
            # The catalog is the only source of prompts, so this is the client's error.
            raise invalid_params(exc) from None
        line = request_line()
        if line is not None:
            line.prompt_served(entry.definition)
        try:
            values = validated(entry, message.arguments)
        except InvalidArguments as exc:
            raise invalid_params(exc) from None
        # Not re-validated: arguments are typed values from here on, not wire strings.
        handed_on = message.model_copy(update={"arguments": values})
        return await call_next(context.copy(message=handed_on))
