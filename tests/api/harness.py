"""Drives ``create_app()`` in-process: REST through httpx, MCP over streamable HTTP."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from domain.prompts import Scalar
from infrastructure.catalog.catalog import PromptCatalog

BASE_URL = "http://127.0.0.1:8000"


def catalog_of(app: FastAPI) -> PromptCatalog:
    """The catalog ``app`` serves."""
    catalog: PromptCatalog = app.state.ctxfy.catalog
    return catalog


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    """An httpx client that calls ``app`` in-process; it never follows redirects."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` while its lifespan, and so the MCP session manager, runs."""
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        yield client


def mcp_over_http(app: FastAPI, path: str = "/mcp") -> Client[StreamableHttpTransport]:
    """An MCP client speaking streamable HTTP to ``app`` at ``path``, through ASGI.

    The app's lifespan must be running (see ``serving``).
    """

    def http_client(
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        auth: httpx.Auth | None = None,
        **_: Any,
    ) -> httpx.AsyncClient:
        # FastMCP asks for follow_redirects=True; it is dropped so a redirect at /mcp fails.
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app),
            base_url=BASE_URL,
            headers=headers,
            timeout=timeout or httpx.Timeout(30.0),
            auth=auth,
        )

    return Client(StreamableHttpTransport(url=BASE_URL + path, httpx_client_factory=http_client))


def on_the_wire(arguments: dict[str, Scalar]) -> dict[str, str]:
    """Arguments as an MCP client sends them: every value a string, booleans lower-case."""
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in arguments.items()
    }
