"""Prompt arguments over MCP: strings on the wire, validated once per ``prompts/get``.

``PromptArgumentsMiddleware`` validates before FastMCP renders anything and hands the typed
values on as ``ValidatedArguments``; the prompt renders those without validating again.
"""

from collections.abc import Mapping
from typing import Any

from fastmcp.prompts import PromptResult
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp import MCPError
from mcp.types import INVALID_PARAMS, GetPromptRequestParams

from domain.errors import InvalidArguments, PromptNotFound, PromptRenderError
from domain.prompts import ArgumentType, Scalar
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog


class ValidatedArguments(dict[str, Scalar | None]):
    """Arguments ``CatalogEntry.validate`` accepted: typed, defaults filled in."""


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
    if isinstance(raw, ValidatedArguments):
        return raw
    return ValidatedArguments(entry.validate(mcp_arguments(entry, raw)))


def invalid_params(error: InvalidArguments | PromptRenderError | PromptNotFound) -> MCPError:
    """The JSON-RPC error a client gets for a prompt or arguments that do not fit."""
    data: dict[str, Any] | None = None
    if isinstance(error, InvalidArguments):
        fields = [{"field": e.field, "message": e.message, "type": e.type} for e in error.errors]
        data = {"prompt": error.prompt, "errors": fields}
    elif isinstance(error, PromptRenderError):
        data = {"prompt": error.prompt}
    return MCPError(code=INVALID_PARAMS, message=str(error), data=data)


class PromptArgumentsMiddleware(Middleware):
    """Rejects bad prompt arguments with INVALID_PARAMS before FastMCP renders anything.

    Raising here, rather than in ``render``, keeps a client's mistake out of the
    server's error log (FastMCP logs every render failure with a traceback).
    """

    def __init__(self, catalog: PromptCatalog) -> None:
        self._catalog = catalog

    async def on_get_prompt(
        self,
        context: MiddlewareContext[GetPromptRequestParams],
        call_next: CallNext[GetPromptRequestParams, PromptResult],
    ) -> PromptResult:
        message = context.message
        try:
            entry = self._catalog.get(message.name)
            values = validated(entry, message.arguments)
        except (PromptNotFound, InvalidArguments) as exc:
            # The catalog is the only source of prompts, so either is the client's error.
            raise invalid_params(exc) from None
        # Not re-validated: arguments are typed values from here on, not wire strings.
        handed_on = message.model_copy(update={"arguments": values})
        return await call_next(context.copy(message=handed_on))
