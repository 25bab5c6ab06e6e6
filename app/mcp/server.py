"""The FastMCP server: every catalog prompt as an MCP prompt, validated like REST, served
from the live catalog so that it follows every reload."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastmcp import FastMCP
from fastmcp.prompts import Message, Prompt, PromptArgument, PromptResult
from fastmcp.resources import ResourceTemplate
from fastmcp.server.http import StarletteWithLifespan, StreamableHTTPASGIApp
from fastmcp.server.middleware import Middleware
from fastmcp.server.providers import Provider
from fastmcp.tools import Tool
from fastmcp.utilities.versions import VersionSpec
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

from app.mcp.arguments import (
    PromptArgumentsMiddleware,
    ValidatedArguments,
    invalid_params,
    validated,
)
from app.mcp.middleware import MiddlewareLayer
from app.mcp.notifications import CatalogNotifier
from app.services.catalog import LiveCatalog
from domain.errors import InvalidArguments, PromptNotFound, PromptRenderError
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
    """An MCP prompt backed by one version of a catalog prompt; rendering is the catalog's."""

    _entry: CatalogEntry = PrivateAttr()

    @classmethod
    def from_entry(
        cls, entry: CatalogEntry, *, name: str | None = None, versions: Sequence[str] = ()
    ) -> "CatalogPrompt":
        """Describe ``entry`` the way `prompts/list` shows it, under ``name`` (its own by
        default; ``name@version`` for a pinned one), with every version of the prompt."""
        definition = entry.definition
        prompt = cls(
            name=name or definition.name,
            title=definition.title,
            description=definition.description,
            tags=set(definition.tags),
            meta={
                "version": definition.version,
                "deprecated": definition.deprecated,
                "versions": list(versions or (definition.version,)),
                "generates": definition.generation is not None,
            },
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
        """Render with the catalog's one renderer; arguments arrive validated, and name
        the version they were validated for."""
        entry = arguments.entry if isinstance(arguments, ValidatedArguments) else self._entry
        try:
            rendered = entry.render_validated(validated(entry, arguments))
        except (InvalidArguments, PromptRenderError) as exc:
            raise invalid_params(exc) from None
        return PromptResult(
            [Message(m.text, role=m.role) for m in rendered.messages],
            description=rendered.description,
            meta={"version": rendered.version, "deprecated": rendered.deprecated},
        )


type ToolsOf = Callable[[PromptCatalog], Iterable[Tool]]


@dataclass(frozen=True, slots=True)
class CatalogComponents:
    """What MCP serves of one catalog, built once: a reload builds the next set."""

    catalog: PromptCatalog
    listed_prompts: tuple[CatalogPrompt, ...]
    prompts: dict[str, CatalogPrompt]  # by name (current version) and by name@version
    listed_tools: tuple[Tool, ...]
    tools: dict[str, Tool]

    @classmethod
    def of(cls, catalog: PromptCatalog, tools_of: ToolsOf) -> "CatalogComponents":
        """Every prompt version and generation tool of ``catalog``."""
        prompts: dict[str, CatalogPrompt] = {}
        listed: list[CatalogPrompt] = []
        for entry in catalog:
            versions = [e.version for e in catalog.versions(entry.name)]
            current = CatalogPrompt.from_entry(entry, versions=versions)
            listed.append(current)
            prompts[entry.name] = current
            for version in catalog.versions(entry.name):
                reference = version.definition.reference
                prompts[reference] = CatalogPrompt.from_entry(
                    version, name=reference, versions=versions
                )
        tools = tuple(tools_of(catalog))
        return cls(catalog, tuple(listed), prompts, tools, {t.name: t for t in tools})


class CatalogProvider(Provider):
    """Serves the prompts and generation tools of the catalog serving now.

    Components are built once per catalog and reused by every request until a reload
    replaces the catalog. A prompt is found by ``name`` (its current version) or
    ``name@version``; FastMCP's own component versions are not used (listings would show
    every version, and its order is not ours: the current version skips deprecated ones).
    """

    def __init__(self, catalog: LiveCatalog, tools_of: ToolsOf) -> None:
        super().__init__()
        self._catalog = catalog
        self._tools_of = tools_of
        self._built = CatalogComponents.of(catalog.current, tools_of)

    def components(self) -> CatalogComponents:
        """The components of the catalog serving now."""
        catalog, built = self._catalog.current, self._built
        if built.catalog is not catalog:
            built = self._built = CatalogComponents.of(catalog, self._tools_of)
        return built

    def follow(self, new: PromptCatalog) -> None:
        """Build the new catalog's components as it starts serving (a ``LiveCatalog`` swap
        hook), so that no request waits for them."""
        self.components()

    async def _list_prompts(self) -> Sequence[Prompt]:
        return self.components().listed_prompts

    async def _get_prompt(self, name: str, version: VersionSpec | None = None) -> Prompt | None:
        return self.components().prompts.get(name)

    async def _list_tools(self) -> Sequence[Tool]:
        return self.components().listed_tools

    async def _get_tool(self, name: str, version: VersionSpec | None = None) -> Tool | None:
        return self.components().tools.get(name)


class ArgumentCompletion:
    """``completion/complete`` for prompt arguments: choices, booleans, suggestions.

    Only prompts of the catalog (``name`` or ``name@version``) are completed; anything else
    gets an empty completion, as the protocol asks for references a server does not handle.
    """

    def __init__(self, catalog: LiveCatalog) -> None:
        self._catalog = catalog

    def __call__(
        self,
        reference: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> list[str] | None:
        if not isinstance(reference, PromptReference):
            return None
        try:
            entry = self._catalog.current.resolve(reference.name)
        except PromptNotFound:
            return None
        declared = entry.definition.argument(argument.name)
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
    catalog: LiveCatalog,
    *,
    version: str,
    middleware: list[Middleware],
    state_security: RequestStateSecurity,
    list_cache_seconds: int = 0,
    tools: ToolsOf = lambda _: (),
    templates: Sequence[ResourceTemplate] = (),
    notifier: CatalogNotifier | None = None,
) -> FastMCP:
    """The MCP server for the live ``catalog``; transport is chosen when its HTTP app is built.

    Prompts, and the generation tools ``tools`` makes of a catalog, follow every reload.
    ``middleware`` runs first, in order, before the argument validation. The server's name
    is the audience of sealed request state, so every replica must keep it. With
    ``list_cache_seconds``, 2026-07-28 list results say how long a client may keep them,
    privately: what a key may list depends on its scope. ``notifier`` tells connected
    clients when the catalog changes. ``templates`` are served as they are (the generation
    records' among them).
    """
    provider = CatalogProvider(catalog, tools)
    # Registered before anything that tells clients, so they re-list from built components.
    catalog.on_swap(provider.follow)
    server: FastMCP = FastMCP(
        name="ctxfy",
        instructions=INSTRUCTIONS,
        version=version,
        mask_error_details=True,
        on_duplicate="error",
        # One layer: FastMCP costs every request a chain of closures per layer.
        middleware=[
            MiddlewareLayer(
                *middleware,
                *([notifier] if notifier is not None else []),
                PromptArgumentsMiddleware(catalog),
            )
        ],
        # Our tools' schemas are dereferenced once when built (tools.py), not per list.
        dereference_schemas=False,
        providers=[provider],
        request_state_security=state_security,
        cache_ttl=list_cache_seconds or None,
        cache_scope="private" if list_cache_seconds else None,
    )
    for template in templates:
        server.add_template(template)
    server.add_completion_handler(ArgumentCompletion(catalog))
    if notifier is not None:
        notifier.serve_listen(server)
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
