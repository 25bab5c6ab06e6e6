"""Fixtures: apps built by ``create_app()`` and clients that reach them in-process."""

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import FastMCPTransport

from app.main import create_app
from app.settings import Settings
from domain.llm import LlmCompletion, LlmError
from infrastructure.catalog.loader import load_catalog
from infrastructure.logging import configure_logging
from infrastructure.metrics import MULTIPROC_ENV
from tests.api.harness import asgi_client, serving
from tests.fakes import ScriptedLlm


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test that takes ``prompt_name`` once per prompt of the loaded catalog."""
    if "prompt_name" in metafunc.fixturenames:
        metafunc.parametrize("prompt_name", [entry.name for entry in load_catalog()])


@pytest.fixture(autouse=True)
def _hermetic(hermetic_settings: None) -> None:
    """Every API test runs with hermetic settings (see ``tests/conftest.py``)."""


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> ScriptedLlm:
    """The server-side LLM fake; a test scripts its answers with an indirect parameter."""
    script: tuple[LlmCompletion | LlmError, ...] = getattr(request, "param", ())
    return ScriptedLlm(*script)


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The app's JSON log lines, captured; metrics are this process's alone."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    return stream


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
