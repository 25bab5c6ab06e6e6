"""The composition root: ``create_app(settings)`` builds everything; nothing is built at import."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from app.asgi import McpPathMiddleware
from app.errors import install_error_handlers
from app.mcp_server import build_mcp_server
from app.rest import health, prompts
from app.settings import Settings
from app.state import AppState
from infrastructure.catalog.loader import load_catalog
from infrastructure.logging import configure_logging

DESCRIPTION = """\
Ctxfy serves a library of context-engineering prompts — Context Stacks, Product
Requirements Prompts, technical specifications and more — to MCP clients at `/mcp`
(streamable HTTP) and to REST clients under `/v1`.

Every prompt has its own preview operation below, typed by the prompt's arguments and
with a worked example: it renders exactly the messages MCP `prompts/get` returns.
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
    mcp_app = mcp.http_app(
        path="/",
        stateless_http=settings.mcp_stateless,
        json_response=settings.mcp_stateless,
    )
    state = AppState(
        settings=settings, version=app_version, catalog=catalog, mcp=mcp, mcp_app=mcp_app
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The MCP app's lifespan runs its session manager; without it every MCP request
        # fails with "Task group is not initialized".
        async with mcp_app.lifespan(app):
            state.ready = True
            try:
                yield
            finally:
                state.ready = False

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
    app.mount("/mcp", mcp_app)
    app.add_middleware(McpPathMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """Uvicorn's factory: settings from the environment, logging configured."""
    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return create_app(settings)
