"""MCP ``completion/complete`` for prompt arguments, and list caching hints, in both eras."""

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastmcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from app.main import create_app
from app.settings import Settings
from tests.api.harness import bearer, catalog_of, issue_key, state_of

pytestmark = pytest.mark.anyio

ERAS = pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])


async def completed(app: FastAPI, mode: str, prompt: str, name: str, value: str) -> list[str]:
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode=mode) as mcp:
            completion = await mcp.complete(
                PromptReference(type="ref/prompt", name=prompt), {"name": name, "value": value}
            )
    values: list[str] = completion.values
    return values


@ERAS
async def test_an_enum_argument_completes_to_its_matching_choices(app: FastAPI, mode: str) -> None:
    declared = catalog_of(app).get("context_stack").definition.argument("output_format")
    assert declared is not None
    choices = list(declared.choices)
    prefix = choices[1][:2]

    assert await completed(app, mode, "context_stack", "output_format", "") == choices
    assert await completed(app, mode, "context_stack", "output_format", prefix) == [
        c for c in choices if c.startswith(prefix)
    ]


@ERAS
async def test_a_string_argument_completes_to_the_suggestions_its_prompt_declares(
    app: FastAPI, mode: str
) -> None:
    assert await completed(app, mode, "context_stack", "domain", "ident") == ["identity platform"]
    assert await completed(app, mode, "context_stack", "task", "any") == []


@ERAS
async def test_unknown_prompts_arguments_and_templates_complete_to_nothing(
    app: FastAPI, mode: str
) -> None:
    assert await completed(app, mode, "no_such_prompt", "domain", "") == []
    assert await completed(app, mode, "context_stack", "no_such_argument", "") == []
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode=mode) as mcp:
            completion = await mcp.complete(
                ResourceTemplateReference(type="ref/resource", uri="ctxfy://x/{id}"),
                {"name": "id", "value": ""},
            )
    assert completion.values == []


async def test_modern_list_results_carry_a_private_caching_hint(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await issue_key(app)
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {
        **bearer(key),
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "prompts/list",
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "prompts/list", "params": {"_meta": meta}}
    with anyio.fail_after(10):
        response = await client.post("/mcp", json=body, headers=headers)

    result = response.json()["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (60_000, "private")


async def test_a_zero_cache_time_tells_modern_clients_not_to_cache_lists() -> None:
    app = create_app(Settings(mcp_list_cache_seconds=0))
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode="2026-07-28") as mcp:
            listed = await mcp.list_prompts_mcp()
    assert listed.ttl_ms == 0
