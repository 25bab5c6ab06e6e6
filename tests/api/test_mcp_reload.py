"""MCP follows a catalog reload without a restart: listings, rendering and generation tools
serve the new catalog at once, from components built once per catalog."""

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp import MCPError
from mcp.types import INVALID_PARAMS

from app.mcp.server import CatalogProvider
from app.services.catalog import ReloadOutcome, ReloadTrigger
from domain.keys import Scope
from domain.prompts import VERSION_ARGUMENT
from tests.api.catalog_files import (
    CURRENT,
    NAME,
    body_for,
    rendered,
    versioned_app,
    versioned_prompts,
    write_version,
)
from tests.api.harness import issue_key, mcp_over_http, serving, state_of
from tests.fakes import HeldLlm, ScriptedLlm

pytestmark = pytest.mark.anyio

TOOL = f"generate_{NAME}"


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    return versioned_prompts(tmp_path / "prompts")


@pytest.fixture
def app(prompts: Path, llm: ScriptedLlm) -> FastAPI:
    return versioned_app(prompts, llm)


@pytest.fixture(params=["legacy", "2026-07-28"])
async def writer(
    request: pytest.FixtureRequest, app: FastAPI
) -> AsyncIterator[Client[StreamableHttpTransport]]:
    """One MCP client over HTTP with a write key, open across the reloads of a test."""
    async with serving(app, scope=None):
        key = await issue_key(app, Scope.WRITE)
        async with mcp_over_http(app, key=key, mode=request.param) as mcp:
            yield mcp


async def reload(app: FastAPI) -> None:
    report = await state_of(app).catalog.reload(ReloadTrigger.API)
    assert report.outcome is ReloadOutcome.CHANGED, report.error


def remove_every_file(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


def provider_of(app: FastAPI) -> CatalogProvider:
    (provider,) = [p for p in state_of(app).mcp.providers if isinstance(p, CatalogProvider)]
    return provider


async def test_a_new_version_is_listed_rendered_and_generated_after_a_reload(
    app: FastAPI, prompts: Path, writer: Client[StreamableHttpTransport], llm: ScriptedLlm
) -> None:
    write_version(prompts, "1.2.0")
    with anyio.fail_after(10):
        before = {p.name: p for p in await writer.list_prompts()}[NAME]
        await writer.list_tools()  # FastMCP keeps these input schemas (for Mcp-Param checks)
        await reload(app)
        after = {p.name: p for p in await writer.list_prompts()}[NAME]
        (tool,) = [t for t in await writer.list_tools() if t.name == TOOL]
        unpinned = await writer.get_prompt(NAME, body_for("1.2.0"))
        pinned = await writer.get_prompt(f"{NAME}@{CURRENT}", body_for(CURRENT))
        document = await writer.call_tool(TOOL, body_for("1.2.0"))
        old = await writer.call_tool(TOOL, {VERSION_ARGUMENT: "1.0.0", **body_for("1.0.0")})

    assert (before.meta or {})["version"] == CURRENT
    assert (after.meta or {})["version"] == "1.2.0"
    assert (after.meta or {})["versions"] == ["2.0.0", "1.2.0", "1.1.0", "1.0.0"]
    assert tool.input_schema["properties"][VERSION_ARGUMENT]["enum"][1] == "1.2.0"
    assert (unpinned.meta or {})["version"] == "1.2.0"
    assert (pinned.meta or {})["version"] == CURRENT
    assert (document.structured_content or {})["version"] == "1.2.0"
    assert (old.structured_content or {})["version"] == "1.0.0"
    assert llm.requests[0].messages[0].text == rendered("1.2.0")


async def test_a_prompt_removed_by_a_reload_is_gone_from_lists_and_refused(
    app: FastAPI, prompts: Path, writer: Client[StreamableHttpTransport]
) -> None:
    remove_every_file(prompts)
    with anyio.fail_after(10):
        await reload(app)
        listed = [p.name for p in await writer.list_prompts()]
        tools = [t.name for t in await writer.list_tools()]
        with pytest.raises(MCPError) as refused:
            await writer.get_prompt(f"{NAME}@1.0.0", body_for("1.0.0"))

    assert NAME not in listed
    assert "context_stack" in listed
    assert TOOL not in tools
    assert refused.value.error.code == INVALID_PARAMS


async def test_components_are_built_once_per_catalog(app: FastAPI, prompts: Path) -> None:
    provider = provider_of(app)
    built = provider.components()
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp) as mcp:
            listed = await provider.list_prompts()
            await mcp.list_prompts()
            await mcp.get_prompt(NAME, body_for(CURRENT))

    assert provider.components() is built
    assert list(await provider.list_prompts()) == list(listed)
    assert all(a is b for a, b in zip(await provider.list_prompts(), listed, strict=True))

    write_version(prompts, "1.2.0")
    await reload(app)

    rebuilt = provider._built  # built by the reload itself, before any request asked
    assert rebuilt is not built
    assert rebuilt.catalog is state_of(app).catalog.current
    assert provider.components() is rebuilt


async def test_a_generation_in_flight_when_a_reload_lands_keeps_its_version(
    prompts: Path,
) -> None:
    llm = HeldLlm()
    app = versioned_app(prompts, llm)
    documents: list[dict[str, object]] = []
    async with serving(app, scope=None):
        key = await issue_key(app, Scope.WRITE)
        async with mcp_over_http(app, key=key, mode="legacy") as mcp:

            async def generate() -> None:
                result = await mcp.call_tool(TOOL, body_for(CURRENT))
                documents.append(result.structured_content or {})

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(generate)
                    await llm.until(lambda: llm.held == 1)
                    write_version(prompts, "1.2.0")
                    await reload(app)
                    llm.release()
                after = await mcp.call_tool(TOOL, body_for("1.2.0"))

    assert [d["version"] for d in documents] == [CURRENT]
    assert (after.structured_content or {})["version"] == "1.2.0"
