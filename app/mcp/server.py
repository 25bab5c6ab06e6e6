"""The FastMCP server: every catalog prompt as an MCP prompt, validated like REST."""

from typing import Any

from fastmcp import FastMCP
from fastmcp.prompts import Message, Prompt, PromptArgument, PromptResult
from fastmcp.server.http import StarletteWithLifespan, StreamableHTTPASGIApp
from fastmcp.server.middleware import Middleware
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.request_state import RequestStateSecurity
from mcp.types import (
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)
from pydantic import PrivateAttr
from starlette.middleware import Middleware as StarletteMiddleware
from starlette.routing import Route

from app.mcp.arguments import PromptArgumentsMiddleware, invalid_params, validated
from domain.errors import InvalidArguments, PromptRenderError
from domain.prompts import PromptArgument as CatalogArgument
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog

MAX_TYPED = 200  # a partial value longer than any suggestion matches none of them anyway
INSTRUCTIONS = (
    "Ctxfy serves context-engineering prompts: Context Stacks, Product Requirements "
    "Prompts, technical specifications and more. List them with prompts/list and render "
    "one with prompts/get; every argument is described in the listing. With a write key, "
    "the generate_<prompt> tools turn a prompt into the finished document, written by your "
    "own LLM through sampling when you offer it, otherwise by the server's."
)


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
        """Render with the catalog's one renderer; arguments arrive validated."""
        try:
            rendered = self._entry.render_validated(validated(self._entry, arguments))
        except (InvalidArguments, PromptRenderError) as exc:
            raise invalid_params(exc) from None
        return PromptResult(
            [Message(m.text, role=m.role) for m in rendered.messages],
            description=rendered.description,
        )


class ArgumentCompletion:
    """``completion/complete`` for prompt arguments: choices, booleans, suggestions.

    Only prompts of the catalog are completed; anything else gets an empty completion, as the
    protocol asks for references a server does not handle.
    """

    def __init__(self, catalog: PromptCatalog) -> None:
        self._catalog = catalog

    def __call__(
        self,
        reference: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> list[str] | None:
        if not isinstance(reference, PromptReference) or reference.name not in self._catalog:
            return None
        declared = self._catalog.get(reference.name).definition.argument(argument.name)
        if declared is None:
            return None
        return list(declared.completions(argument.value[:MAX_TYPED]))


def _describe(text: str, argument: CatalogArgument) -> str:
    """Fold type, choices and default into the description: MCP arguments carry no schema."""
    hints: list[str] = [argument.type.value]
    if argument.choices:
        hints.append("one of " + ", ".join(argument.choices))
    default = argument.default
    if default is not None:
        hints.append(f"default {str(default).lower() if isinstance(default, bool) else default}")
    return f"{text} ({'; '.join(hints)})"


def request_state_security(keys: tuple[str, ...], *, ttl: float) -> RequestStateSecurity:
    """How 2026-07-28 round-trip state is sealed: shared ``keys``, else a key of this process.

    ``ttl`` bounds how long a client's LLM may take between the two rounds.
    """
    if keys:
        return RequestStateSecurity(keys=list(keys), ttl=ttl)
    return RequestStateSecurity.ephemeral(ttl=ttl)


def build_mcp_server(
    catalog: PromptCatalog,
    *,
    version: str,
    middleware: list[Middleware],
    state_security: RequestStateSecurity,
    list_cache_seconds: int = 0,
) -> FastMCP:
    """The MCP server for ``catalog``; transport is chosen when its HTTP app is built.

    ``middleware`` runs first, in order, before the argument validation. The server's name
    is the audience of sealed request state, so every replica must keep it. With
    ``list_cache_seconds``, 2026-07-28 list results say how long a client may keep them,
    privately: what a key may list depends on its scope.
    """
    server: FastMCP = FastMCP(
        name="ctxfy",
        instructions=INSTRUCTIONS,
        version=version,
        mask_error_details=True,
        on_duplicate="error",
        middleware=[*middleware, PromptArgumentsMiddleware(catalog)],
        request_state_security=state_security,
        cache_ttl=list_cache_seconds or None,
        cache_scope="private" if list_cache_seconds else None,
    )
    for entry in catalog:
        server.add_prompt(CatalogPrompt.from_entry(entry))
    server.add_completion_handler(ArgumentCompletion(catalog))
    return server


def mcp_http_app(
    server: FastMCP, *, stateless: bool, idle_seconds: float | None = None
) -> StarletteWithLifespan:
    """The streamable-HTTP app of ``server``, serving both protocol eras at its root.

    The SDK's auth-context middleware hands the caller our middleware authenticated
    (``scope["user"]``) to the SDK, which binds sealed round-trip state to it: another key
    cannot replay a caller's state.
    """
    return server.http_app(
        path="/",
        stateless_http=stateless,
        json_response=stateless,
        session_idle_timeout=idle_seconds,
        middleware=[StarletteMiddleware(AuthContextMiddleware)],
    )


def transport_running(mcp_app: StarletteWithLifespan) -> bool:
    """Whether the MCP session manager is running and can take requests."""
    for route in mcp_app.routes:
        endpoint = getattr(route, "endpoint", None) if isinstance(route, Route) else None
        if isinstance(endpoint, StreamableHTTPASGIApp):
            manager = endpoint.session_manager
            # The SDK exposes no public "running" flag; its task group is set exactly
            # while run() is active, which is when requests can be served.
            return manager is not None and manager._task_group is not None
    return False
