"""The FastMCP server: every catalog prompt as an MCP prompt, validated like REST."""

from collections.abc import Mapping
from typing import Any

from fastmcp import FastMCP
from fastmcp.prompts import Message, Prompt, PromptArgument, PromptResult
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp import McpError
from mcp.types import INVALID_PARAMS, ErrorData, GetPromptRequestParams
from pydantic import PrivateAttr

from app.mcp_logging import McpLoggingMiddleware
from domain.errors import InvalidArguments, PromptNotFound, PromptRenderError
from domain.prompts import ArgumentType
from domain.prompts import PromptArgument as CatalogArgument
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog

INSTRUCTIONS = (
    "Ctxfy serves context-engineering prompts: Context Stacks, Product Requirements "
    "Prompts, technical specifications and more. List them with prompts/list and render "
    "one with prompts/get; every argument is described in the listing. With a write key, "
    "the generate_<prompt> tools turn a prompt into the finished document, written by your "
    "own LLM through sampling when you offer it, otherwise by the server's."
)


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


def invalid_params(error: InvalidArguments | PromptRenderError) -> McpError:
    """The JSON-RPC error a client gets for arguments that do not fit the prompt."""
    data: dict[str, Any] = {"prompt": error.prompt}
    if isinstance(error, InvalidArguments):
        data["errors"] = [
            {"field": e.field, "message": e.message, "type": e.type} for e in error.errors
        ]
    return McpError(ErrorData(code=INVALID_PARAMS, message=str(error), data=data))


class CatalogPrompt(Prompt):
    """An MCP prompt backed by a catalog entry; rendering is the catalog's."""

    _entry: CatalogEntry = PrivateAttr()

    @classmethod
    def from_entry(cls, entry: CatalogEntry) -> "CatalogPrompt":
        """Describe ``entry`` the way `prompts/list` shows it."""
        definition = entry.definition
        prompt = cls(
            name=definition.name,
            title=definition.title,
            description=definition.description,
            tags=set(definition.tags),
            meta={"version": definition.version, "generates": definition.generation is not None},
            arguments=[
                PromptArgument(
                    name=a.name, description=_describe(a.description, a), required=a.required
                )
                for a in definition.arguments
            ],
        )
        prompt._entry = entry
        return prompt

    async def render(self, arguments: dict[str, Any] | None = None) -> PromptResult:
        """Validate and render with the catalog's one renderer."""
        try:
            rendered = self._entry.render(mcp_arguments(self._entry, arguments))
        except (InvalidArguments, PromptRenderError) as exc:
            raise invalid_params(exc) from None
        return PromptResult(
            [Message(m.text, role=m.role) for m in rendered.messages],
            description=rendered.description,
        )


def _describe(text: str, argument: CatalogArgument) -> str:
    """Fold type, choices and default into the description: MCP arguments carry no schema."""
    hints: list[str] = [argument.type.value]
    if argument.choices:
        hints.append("one of " + ", ".join(argument.choices))
    default = argument.default
    if default is not None:
        hints.append(f"default {str(default).lower() if isinstance(default, bool) else default}")
    return f"{text} ({'; '.join(hints)})"


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
        try:
            entry = self._catalog.get(context.message.name)
        except PromptNotFound as exc:
            # The catalog is the only source of prompts, so this is the client's error.
            raise McpError(ErrorData(code=INVALID_PARAMS, message=str(exc))) from None
        try:
            entry.validate(mcp_arguments(entry, context.message.arguments))
        except InvalidArguments as exc:
            raise invalid_params(exc) from None
        return await call_next(context)


def build_mcp_server(catalog: PromptCatalog, *, version: str) -> FastMCP:
    """The MCP server for ``catalog``; transport is chosen when its HTTP app is built."""
    server: FastMCP = FastMCP(
        name="ctxfy",
        instructions=INSTRUCTIONS,
        version=version,
        mask_error_details=True,
        on_duplicate="error",
        middleware=[McpLoggingMiddleware(), PromptArgumentsMiddleware(catalog)],
    )
    for entry in catalog:
        server.add_prompt(CatalogPrompt.from_entry(entry))
    return server
