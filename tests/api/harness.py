"""Drives ``create_app()`` in-process: REST through httpx, MCP over streamable HTTP."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from app.state import AppState
from domain.keys import Scope
from domain.prompts import Scalar
from infrastructure.catalog.catalog import PromptCatalog

BASE_URL = "http://127.0.0.1:8000"


def catalog_of(app: FastAPI) -> PromptCatalog:
    """The catalog ``app`` serves."""
    catalog: PromptCatalog = app.state.ctxfy.catalog.current
    return catalog


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    """An httpx client that calls ``app`` in-process; it never follows redirects."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL)


def state_of(app: FastAPI) -> AppState:
    """The application's state (key service, authenticator, store, …)."""
    state: AppState = app.state.ctxfy
    return state


async def issue_key(app: FastAPI, scope: Scope = Scope.READ, user_id: str = "tester") -> str:
    """A new key of ``scope`` from the app's own key service; its lifespan must run."""
    issued = await state_of(app).keys.create(user_id=user_id, scope=scope, name="test")
    return issued.plaintext


def bearer(key: str) -> dict[str, str]:
    """The header MCP clients send."""
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def serving(
    app: FastAPI, scope: Scope | None = Scope.READ
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` while its lifespan runs, sending a new key of ``scope``
    (none when ``scope`` is ``None``)."""
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        if scope is not None:
            client.headers.update(bearer(await issue_key(app, scope)))
        yield client


class RedirectSeen(AssertionError):
    """The MCP endpoint answered with a redirect, which breaks POST and streaming clients."""


async def _refuse_redirects(response: httpx2.Response) -> None:
    # SDK 2 clients follow same-origin redirects whatever they are told, so one is caught here.
    if response.is_redirect:
        raise RedirectSeen(f"{response.request.url} answered {response.status_code}")


def mcp_over_http(
    app: FastAPI, path: str = "/mcp", key: str | None = None, *, mode: str = "auto"
) -> Client[StreamableHttpTransport]:
    """An MCP client speaking streamable HTTP to ``app`` at ``path``, through ASGI,
    presenting ``key`` as a bearer token, in protocol ``mode`` (``auto``, ``legacy``, or a
    pinned revision such as ``2026-07-28``). The app's lifespan must run.

    The ASGI transport buffers whole responses, so a server-to-client request on a legacy
    session's stream (sampling) cannot be answered here: that needs a real server.
    """

    def http_client(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
        **_: Any,
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app),
            base_url=BASE_URL,
            headers=headers,
            timeout=timeout or httpx2.Timeout(30.0),
            auth=auth,
            event_hooks={"response": [_refuse_redirects]},
        )

    transport = StreamableHttpTransport(
        url=BASE_URL + path,
        headers=bearer(key) if key else None,
        httpx_client_factory=http_client,
    )
    return Client(transport, mode=mode)


def on_the_wire(arguments: dict[str, Scalar]) -> dict[str, str]:
    """Arguments as an MCP client sends them: every value a string, booleans lower-case."""
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in arguments.items()
    }
