"""The ``generate_<prompt>`` MCP tools over streamable HTTP at ``/mcp``, through ASGI.

The client's LLM (sampling) cannot be reached this way: ASGI buffers whole responses, so a
request the server sends mid-call arrives only after the call ends. That path is tested with
the in-memory client (``test_mcp_generation_tool.py``) and against uvicorn (``tests/e2e``).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError
from mcp.types import ResourceLink, TextContent

from app.main import create_app
from app.services.generation import GeneratedDocument
from app.settings import Settings
from domain.generation import LlmMode
from domain.keys import Scope
from domain.prompts import VERSION_ARGUMENT
from tests.api.harness import catalog_of, issue_key, mcp_over_http, on_the_wire
from tests.fakes import ScriptedLlm, completion, served
from tests.integration.prompt_files import write_unrenderable_prompts

pytestmark = pytest.mark.anyio

MODEL = "gpt-test-2026"
SERVER_LLM: dict[str, Any] = {"llm_base_url": "https://llm.test/v1", "llm_model": MODEL}
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}


@pytest.fixture
def app(llm: ScriptedLlm) -> FastAPI:
    """Overrides the conftest app: a server-side LLM is configured, and faked."""
    return create_app(Settings(**SERVER_LLM), server_llm=llm)


@asynccontextmanager
async def mcp_client(
    app: FastAPI, scope: Scope = Scope.WRITE, *, mode: str = "auto"
) -> AsyncIterator[Client[StreamableHttpTransport]]:
    """An MCP client (no sampling) of ``app`` with a key of ``scope``, its lifespan running."""
    async with app.router.lifespan_context(app):
        key = await issue_key(app, scope)
        async with mcp_over_http(app, key=key, mode=mode) as client:
            yield client


@pytest.fixture
async def writer(app: FastAPI) -> AsyncIterator[Client[StreamableHttpTransport]]:
    async with mcp_client(app) as client:
        yield client


async def tool_error(client: Client[StreamableHttpTransport], name: str, arguments: Any) -> str:
    with anyio.fail_after(10), pytest.raises(ToolError) as caught:
        await client.call_tool(name, arguments)
    return str(caught.value)


async def test_a_write_key_lists_a_generate_tool_per_generating_prompt_typed_by_its_arguments(
    app: FastAPI, writer: Client[StreamableHttpTransport]
) -> None:
    with anyio.fail_after(10):
        tools = {tool.name: tool for tool in await writer.list_tools()}

    generating = [e for e in catalog_of(app) if e.definition.generation is not None]
    assert generating
    assert {name for name in tools if name.startswith("generate_")} == {
        f"generate_{e.name}" for e in generating
    }
    for entry in generating:
        tool = tools[f"generate_{entry.name}"]
        pin = tool.input_schema["properties"].pop(VERSION_ARGUMENT)
        assert tool.input_schema == entry.argument_model.model_json_schema()
        assert pin["enum"] == [entry.version]
        assert tool.output_schema is not None
        assert set(tool.output_schema["properties"]) == set(GeneratedDocument.model_fields)


async def test_a_read_key_sees_no_generate_tool_and_cannot_call_one(
    app: FastAPI, llm: ScriptedLlm
) -> None:
    async with mcp_client(app, Scope.READ) as reader:
        with anyio.fail_after(10):
            listed = [tool.name for tool in await reader.list_tools()]
        refused = await tool_error(reader, "generate_context_stack", CONTEXT_STACK)

    assert not [name for name in listed if name.startswith("generate_")]
    assert "Unknown tool: 'generate_context_stack'" in refused
    assert llm.requests == []


async def test_a_client_without_sampling_gets_the_document_from_the_server_llm(
    writer: Client[StreamableHttpTransport], llm: ScriptedLlm
) -> None:
    with anyio.fail_after(10):
        result = await writer.call_tool("generate_context_stack", CONTEXT_STACK)

    assert not result.is_error
    text, link = result.content
    assert isinstance(text, TextContent)
    assert text.text == completion().text
    assert result.structured_content is not None
    generation_id = result.structured_content.pop("generation_id")
    assert result.structured_content == served() | {"version": "1.0.0", "deprecated": False}
    assert isinstance(link, ResourceLink)
    assert link.uri == f"ctxfy://generations/{generation_id}"
    assert len(llm.requests) == 1


async def test_without_sampling_or_a_server_llm_the_tool_says_sampling_is_unavailable() -> None:
    async with mcp_client(create_app(Settings())) as writer:
        message = await tool_error(writer, "generate_context_stack", CONTEXT_STACK)

    assert message.startswith("sampling_unavailable: ")
    assert "does not offer sampling" in message


async def test_invalid_arguments_are_a_tool_error_naming_each_field_and_ask_no_llm(
    writer: Client[StreamableHttpTransport], llm: ScriptedLlm
) -> None:
    arguments = {"task": "x" * 5000, "output_format": "pdf", "colour": "blue"}

    message = await tool_error(writer, "generate_context_stack", arguments)

    assert message.startswith("invalid_arguments: ")
    for field in ("task", "domain", "output_format", "colour"):
        assert field in message
    assert llm.requests == []


async def test_string_arguments_are_coerced_as_prompts_get_coerces_them(
    app: FastAPI, writer: Client[StreamableHttpTransport], llm: ScriptedLlm
) -> None:
    example = catalog_of(app).get("adr").definition.example_arguments
    sent = on_the_wire(example | {"adr_number": 3})
    assert sent["adr_number"] == "3"

    with anyio.fail_after(10):
        prompt = await writer.get_prompt("adr", sent)
        result = await writer.call_tool("generate_adr", sent)

    assert not result.is_error
    (asked,) = llm.requests
    rendered = [m.content.text for m in prompt.messages if isinstance(m.content, TextContent)]
    assert [m.text for m in asked.messages] == rendered
    assert "ADR-0003" in rendered[0]


async def test_string_booleans_reach_the_llm_as_booleans(
    writer: Client[StreamableHttpTransport], llm: ScriptedLlm
) -> None:
    with anyio.fail_after(10):
        for flag in ("true", "false"):
            await writer.call_tool(
                "generate_context_stack", CONTEXT_STACK | {"include_examples": flag}
            )

    with_examples, without = (request.messages[0].text for request in llm.requests)
    assert "Close each layer with one short, concrete example" in with_examples
    assert "Close each layer with one short, concrete example" not in without


@pytest.mark.parametrize(
    ("mode", "why"),
    [("legacy", "stateless mode"), ("2026-07-28", "does not offer sampling")],
)
async def test_a_stateless_server_with_a_client_only_policy_fails_at_once_saying_why(
    mode: str, why: str
) -> None:
    app = create_app(Settings(mcp_stateless=True, llm_mode=LlmMode.CLIENT))

    with anyio.fail_after(5):
        async with mcp_client(app, mode=mode) as writer:
            message = await tool_error(writer, "generate_context_stack", CONTEXT_STACK)

    assert message.startswith("sampling_unavailable: ")
    assert why in message


def with_unrenderable_prompts(directory: Path, llm: ScriptedLlm) -> FastAPI:
    """An app serving prompts that some valid arguments cannot turn into LLM messages."""
    generation = {"system_prompt": "You write documents.", "max_tokens": 64}
    write_unrenderable_prompts(directory, generation)
    return create_app(Settings(**SERVER_LLM, prompts_dir=directory), server_llm=llm)


async def tool_failure(
    client: Client[StreamableHttpTransport], name: str, arguments: dict[str, str], *, token: bool
) -> str:
    """The error text of a failed call, made with or without a progress token."""
    with anyio.fail_after(10):
        if token:  # fastmcp's client always sends a progress token
            result = await client.call_tool(name, arguments, raise_on_error=False)
            assert result.is_error
            content = result.content
        else:
            raw = await client.session.call_tool(name, arguments)
            assert raw.is_error
            content = raw.content
    assert isinstance(content[0], TextContent)
    return content[0].text


@pytest.mark.parametrize("token", [False, True], ids=["no-progress-token", "progress-token"])
async def test_arguments_the_template_cannot_render_are_a_prompt_render_failed_tool_error(
    tmp_path: Path, llm: ScriptedLlm, token: bool
) -> None:
    async with mcp_client(with_unrenderable_prompts(tmp_path, llm)) as writer:
        message = await tool_failure(writer, "generate_divide", {"n": "0"}, token=token)

    assert message.startswith("prompt_render_failed: "), message
    assert llm.requests == []


async def test_a_prompt_that_renders_entirely_empty_is_a_prompt_render_failed_tool_error(
    tmp_path: Path, llm: ScriptedLlm
) -> None:
    async with mcp_client(with_unrenderable_prompts(tmp_path, llm)) as writer:
        message = await tool_failure(writer, "generate_blank", {}, token=False)

    assert message.startswith("prompt_render_failed: "), message
    assert llm.requests == []
