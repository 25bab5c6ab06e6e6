"""The composition root: ``create_app(settings)`` builds everything; nothing is built at import."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import anyio
import structlog
from fastapi import FastAPI

from app.asgi import McpPathMiddleware
from app.auth.middleware import AuthMiddleware
from app.composition import build_generator, build_key_parts, build_server_llm
from app.errors import install_error_handlers
from app.mcp_metrics import McpMetricsMiddleware
from app.mcp_server import build_mcp_server
from app.mcp_tools import generation_tools
from app.observability import RequestContextMiddleware
from app.rest import health, keys, prompts
from app.settings import Settings
from app.state import AppState
from domain.ports import KeyStoreUnavailable
from infrastructure.catalog.loader import load_catalog
from infrastructure.logging import configure_logging
from infrastructure.metrics import Metrics

logger = structlog.get_logger(__name__)

DESCRIPTION = """\
Ctxfy serves a library of context-engineering prompts — Context Stacks, Product
Requirements Prompts, technical specifications and more — to MCP clients at `/mcp`
(streamable HTTP) and to REST clients under `/v1`.

Every prompt has its own preview operation below, typed by the prompt's arguments and
with a worked example: it renders exactly the messages MCP `prompts/get` returns. Prompts
that generate documents also have a generate operation, which has the server-side LLM
write the finished document (`write` scope).
"""


def package_version() -> str:
    """The installed version of Ctxfy."""
    try:
        return version("ctxfy")
    except PackageNotFoundError:  # pragma: no cover — only when run from an uninstalled tree
        return "0.0.0"


def create_app(settings: Settings) -> FastAPI:
    """Build the HTTP application: REST routes, health, and the MCP server at ``/mcp``.

    Raises:
        CatalogError: a prompt file is invalid; the message names file, prompt and field.
    """
    app_version = package_version()
    catalog = load_catalog(settings.prompts_dir)
    mcp = build_mcp_server(catalog, version=app_version)
    metrics = Metrics(version=app_version)
    metrics.prompts_loaded(len(catalog))
    # First in FastMCP's chain, so it times the rest and counts what later middleware refuses.
    mcp.middleware.insert(0, McpMetricsMiddleware(metrics))
    server_llm = build_server_llm(settings)
    generator = build_generator(settings, server_llm, metrics)
    for tool in generation_tools(
        catalog,
        generator,
        stateless=settings.mcp_stateless,
        sampling_timeout=settings.llm_sampling_timeout_seconds,
    ):
        mcp.add_tool(tool)
    mcp_app = mcp.http_app(
        path="/",
        stateless_http=settings.mcp_stateless,
        json_response=settings.mcp_stateless,
    )
    parts = build_key_parts(settings)
    state = AppState(
        settings=settings,
        version=app_version,
        catalog=catalog,
        mcp=mcp,
        mcp_app=mcp_app,
        key_store=parts.store,
        authenticator=parts.authenticator,
        keys=parts.keys,
        metrics=metrics,
        generator=generator,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.key_store.start()
        try:
            # The MCP app's lifespan runs its session manager; without it every MCP
            # request fails with "Task group is not initialized".
            async with mcp_app.lifespan(app), anyio.create_task_group() as tasks:
                tasks.start_soon(_flush_usage_every, state, settings.usage_flush_seconds)
                state.ready = True
                try:
                    yield
                finally:
                    state.ready = False
                    tasks.cancel_scope.cancel()
        finally:
            metrics.close()
            if server_llm is not None:
                await server_llm.close()
            await flush_usage(state)
            await state.key_store.close()

    docs = settings.docs_enabled
    app = FastAPI(
        title="Ctxfy",
        version=app_version,
        summary="Context-engineering prompts over MCP and REST.",
        description=DESCRIPTION,
        lifespan=lifespan,
        debug=settings.debug,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.ctxfy = state
    install_error_handlers(app)
    app.include_router(health.build_router())
    app.include_router(prompts.build_router(catalog))
    app.include_router(keys.build_router())
    app.mount("/mcp", mcp_app)
    app.add_middleware(
        AuthMiddleware, authenticator=state.authenticator, on_failure=metrics.auth_failed
    )
    app.add_middleware(McpPathMiddleware)
    app.add_middleware(RequestContextMiddleware)
    # Last, so the HTTP metrics wrap every other middleware (auth refusals are counted).
    metrics.install(app)
    return app


async def flush_usage(state: AppState) -> None:
    """Write the last-use times gathered since the previous flush, in one batch."""
    usage = state.authenticator.drain_usage()
    if not usage:
        return
    try:
        await state.key_store.record_usage(usage)
    except KeyStoreUnavailable:
        logger.warning("key_usage_not_recorded", keys=len(usage))
        # Keep them for the next flush; newer uses recorded meanwhile win.
        state.authenticator.last_used = usage | state.authenticator.last_used


async def _flush_usage_every(state: AppState, seconds: float) -> None:
    while True:
        await anyio.sleep(seconds)
        await flush_usage(state)


def create_app_from_env() -> FastAPI:
    """Uvicorn's factory: settings from the environment, logging configured."""
    settings = Settings()
    # Console rendering is a development aid; other environments always log JSON.
    fmt = settings.log_format if settings.env == "dev" else "json"
    configure_logging(level=settings.log_level, fmt=fmt)
    return create_app(settings)
