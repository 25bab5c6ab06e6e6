"""REST prompt endpoints: listing, describing, and previews that equal MCP ``prompts/get``."""

from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import FastMCPTransport
from mcp.types import TextContent

from infrastructure.catalog.arguments import model_name
from tests.api.harness import catalog_of, on_the_wire

pytestmark = pytest.mark.anyio


async def test_the_listing_shows_every_catalog_prompt_in_catalog_order(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/v1/prompts")

    assert response.status_code == 200
    body = response.json()
    assert [p["name"] for p in body["prompts"]] == [e.name for e in catalog_of(app)]
    assert body["count"] == len(catalog_of(app))


async def test_the_listing_shows_each_prompts_arguments_and_generation_settings(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    listed = {p["name"]: p for p in (await client.get("/v1/prompts")).json()["prompts"]}

    for entry in catalog_of(app):
        definition, shown = entry.definition, listed[entry.name]
        assert shown["title"] == definition.title
        assert shown["description"] == definition.description
        assert shown["version"] == definition.version
        assert shown["deprecated"] is definition.deprecated
        assert shown["versions"] == [e.version for e in catalog_of(app).versions(entry.name)]
        assert shown["tags"] == list(definition.tags)
        assert [
            (a["name"], a["type"], a["required"], a["default"]) for a in shown["arguments"]
        ] == [(a.name, a.type.value, a.required, a.default) for a in definition.arguments]
        assert [a["choices"] for a in shown["arguments"]] == [
            list(a.choices) for a in definition.arguments
        ]
        generation = definition.generation
        expected = (
            {"max_tokens": generation.max_tokens, "temperature": generation.temperature}
            if generation
            else None
        )
        assert shown["generation"] == expected


async def test_describing_a_prompt_gives_its_argument_schema_and_example(
    app: FastAPI, client: httpx.AsyncClient, prompt_name: str
) -> None:
    entry = catalog_of(app).get(prompt_name)

    response = await client.get(f"/v1/prompts/{prompt_name}")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == prompt_name
    assert body["arguments_schema"] == entry.argument_model.model_json_schema()
    assert body["arguments_schema"]["title"] == model_name(entry.definition)
    assert body["example"] == entry.definition.example_arguments
    assert (body["version"], body["current"]) == (entry.version, True)


async def test_describing_an_unknown_prompt_is_a_404_with_the_error_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/prompts/no_such_prompt")

    assert response.status_code == 404
    body = response.json()
    assert body == {
        "error": "prompt_not_found",
        "message": body["message"],
        "details": [],
        "request_id": response.headers["x-request-id"],
    }
    assert "no_such_prompt" in body["message"]


async def test_previewing_a_prompts_example_renders_what_mcp_prompts_get_returns(
    app: FastAPI,
    client: httpx.AsyncClient,
    mcp: Client[FastMCPTransport],
    prompt_name: str,
) -> None:
    example = catalog_of(app).get(prompt_name).definition.example_arguments

    with anyio.fail_after(10):
        response = await client.post(f"/v1/prompts/{prompt_name}/preview", json=example)
        over_mcp = await mcp.get_prompt(prompt_name, on_the_wire(example))

    assert response.status_code == 200
    preview = response.json()
    assert preview["prompt"] == prompt_name
    assert preview["version"] == catalog_of(app).get(prompt_name).version
    assert preview["description"] == over_mcp.description
    mcp_messages: list[dict[str, Any]] = []
    for message in over_mcp.messages:
        assert isinstance(message.content, TextContent)
        mcp_messages.append({"role": message.role, "text": message.content.text})
    assert [
        {"role": m["role"], "text": m["content"]["text"]} for m in preview["messages"]
    ] == mcp_messages
    assert all(m["content"]["type"] == "text" for m in preview["messages"])


async def test_a_preview_fills_in_defaults_for_arguments_left_out(
    client: httpx.AsyncClient,
) -> None:
    required_only = {"task": "Ship it.", "domain": "release engineering"}
    explicit = required_only | {"output_format": "markdown", "include_examples": True}

    left_out = await client.post("/v1/prompts/context_stack/preview", json=required_only)
    spelled_out = await client.post("/v1/prompts/context_stack/preview", json=explicit)

    assert left_out.status_code == spelled_out.status_code == 200
    assert left_out.json() == spelled_out.json()
