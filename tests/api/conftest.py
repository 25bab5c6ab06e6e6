"""Fixtures: apps built by ``create_app()`` and clients that reach them in-process."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import FastMCPTransport

from app.main import create_app
from app.settings import Settings
from infrastructure.catalog.loader import load_catalog
from tests.api.harness import asgi_client, serving


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test that takes ``prompt_name`` once per prompt of the loaded catalog."""
    if "prompt_name" in metafunc.fixturenames:
        metafunc.parametrize("prompt_name", [entry.name for entry in load_catalog()])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _hermetic_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings see neither the developer's ``CTXFY_`` variables nor a ``.env`` file."""
    for name in [n for n in os.environ if n.startswith("CTXFY_")]:
        monkeypatch.delenv(name)
    # The key store defaults to ./ctxfy.db, so each test gets its own database here;
    # cheap argon2 keeps first-use verification fast (production costs are tested too).
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CTXFY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("CTXFY_ARGON2_MEMORY_COST_KIB", "1024")


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings())


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client of ``app`` with its lifespan running (stateful MCP)."""
    async with serving(app) as client:
        yield client


@pytest.fixture
async def idle_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` whose lifespan has not started."""
    async with asgi_client(app) as client:
        yield client


@pytest.fixture
async def mcp(app: FastAPI) -> AsyncIterator[Client[FastMCPTransport]]:
    """An in-memory MCP client of the app's own FastMCP server."""
    async with Client(app.state.ctxfy.mcp) as client:
        yield client
