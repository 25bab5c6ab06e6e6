"""Generation tools and prompt versions: ``generate_<name>`` generates the current version, or
the one ``prompt_version`` pins, validated by that version's own arguments, in both eras."""

import io
import json
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

from app.mcp.tools import input_schema
from domain.keys import Scope
from domain.prompts import VERSION_ARGUMENT
from infrastructure.catalog.loader import load_catalog
from infrastructure.metrics import MULTIPROC_ENV
from tests.api.catalog_files import (
    ARGUMENT_OF,
    CURRENT,
    NAME,
    body_for,
    rendered,
    versioned_app,
    versioned_prompts,
)
from tests.api.harness import issue_key, mcp_over_http, serving
from tests.api.test_mcp_versions import counted, scrape
from tests.fakes import ScriptedLlm
from tests.integration.prompt_files import argument, prompt, write_prompt

pytestmark = pytest.mark.anyio

TOOL = f"generate_{NAME}"
NEWEST_FIRST = ["2.0.0", "1.1.0", "1.0.0"]


@pytest.fixture(params=["legacy", "2026-07-28"])
def mode(request: pytest.FixtureRequest) -> str:
    era: str = request.param
    return era


@pytest.fixture
def app(tmp_path: Path, llm: ScriptedLlm) -> FastAPI:
    return versioned_app(versioned_prompts(tmp_path / "prompts"), llm)


@asynccontextmanager
async def writing(app: FastAPI, mode: str) -> AsyncIterator[Client[StreamableHttpTransport]]:
    """An MCP client of ``app`` over HTTP with a write key (no sampling: the server writes)."""
    async with serving(app, scope=None):
        key = await issue_key(app, Scope.WRITE)
        async with mcp_over_http(app, key=key, mode=mode) as mcp:
            yield mcp


@pytest.fixture
async def writer(app: FastAPI, mode: str) -> AsyncIterator[Client[StreamableHttpTransport]]:
    async with writing(app, mode) as mcp:
        yield mcp


async def generated(mcp: Client[StreamableHttpTransport], arguments: Any) -> dict[str, Any]:
    with anyio.fail_after(10):
        result = await mcp.call_tool(TOOL, arguments)
    assert result.structured_content is not None
    return result.structured_content


async def tool_error(mcp: Client[StreamableHttpTransport], arguments: Any) -> str:
    with anyio.fail_after(10), pytest.raises(ToolError) as caught:
        await mcp.call_tool(TOOL, arguments)
    return str(caught.value)


def asked(llm: ScriptedLlm) -> str:
    """What the server's LLM was last asked to write from."""
    (message,) = llm.requests[-1].messages
    return message.text


async def test_the_tool_is_listed_once_with_the_versions_a_call_may_pin(
    writer: Client[StreamableHttpTransport],
) -> None:
    with anyio.fail_after(10):
        tools = [t for t in await writer.list_tools() if t.name == TOOL]

    (tool,) = tools
    assert tool.meta is not None
    assert (tool.meta["version"], tool.meta["versions"]) == (CURRENT, NEWEST_FIRST)
    pin = tool.input_schema["properties"][VERSION_ARGUMENT]
    assert (pin["type"], pin["enum"]) == ("string", NEWEST_FIRST)
    assert VERSION_ARGUMENT not in tool.input_schema.get("required", ())


async def test_every_listed_tool_schema_is_inline_with_no_reference_to_follow(
    writer: Client[StreamableHttpTransport],
) -> None:
    # FastMCP's per-list dereferencing is off (app/mcp/server.py): tools inline their own.
    with anyio.fail_after(10):
        tools = await writer.list_tools()

    assert len(tools) > 1
    for tool in tools:
        schemas = json.dumps([tool.input_schema, tool.output_schema])
        assert "$ref" not in schemas, tool.name
        assert "$defs" not in schemas, tool.name
        assert tool.output_schema is not None
        assert {"document", "prompt", "version", "route"} <= set(tool.output_schema["properties"])


async def test_a_call_without_a_pin_generates_the_current_version(
    writer: Client[StreamableHttpTransport], llm: ScriptedLlm
) -> None:
    document = await generated(writer, body_for(CURRENT))

    assert (document["prompt"], document["version"], document["deprecated"]) == (
        NAME,
        CURRENT,
        False,
    )
    assert asked(llm) == rendered(CURRENT)


@pytest.mark.parametrize("version", NEWEST_FIRST)
async def test_a_pinned_call_generates_that_version_from_its_own_arguments(
    writer: Client[StreamableHttpTransport], llm: ScriptedLlm, version: str
) -> None:
    # Only the current version's arguments are in the listed schema's properties, and no
    # argument of another version is: nothing checks a call against it before the tool.
    document = await generated(writer, {VERSION_ARGUMENT: version, **body_for(version)})

    assert (document["version"], document["deprecated"]) == (version, version == "2.0.0")
    assert asked(llm) == rendered(version)


async def test_an_empty_pin_counts_as_no_pin(writer: Client[StreamableHttpTransport]) -> None:
    document = await generated(writer, {VERSION_ARGUMENT: "", **body_for(CURRENT)})

    assert document["version"] == CURRENT


@pytest.mark.parametrize("pin", ["9.9.9", "x" * 300, 1, ["1.0.0"]])
async def test_a_pin_to_no_version_is_a_tool_error_naming_those_that_exist(
    writer: Client[StreamableHttpTransport], llm: ScriptedLlm, pin: object
) -> None:
    message = await tool_error(writer, {VERSION_ARGUMENT: pin, **body_for(CURRENT)})

    assert message.startswith("prompt_version_not_found: ")
    assert all(v in message for v in NEWEST_FIRST)
    assert len(message) < 250  # a long pin is clipped, not echoed
    assert llm.requests == []


async def test_a_pinned_call_with_the_current_versions_arguments_names_what_it_lacks(
    writer: Client[StreamableHttpTransport], llm: ScriptedLlm
) -> None:
    message = await tool_error(writer, {VERSION_ARGUMENT: "1.0.0", **body_for(CURRENT)})

    assert message.startswith("invalid_arguments: ")
    assert ARGUMENT_OF["1.0.0"] in message
    assert ARGUMENT_OF[CURRENT] in message  # not an argument of 1.0.0
    assert llm.requests == []


async def test_a_version_that_does_not_generate_cannot_be_pinned(
    tmp_path: Path, llm: ScriptedLlm
) -> None:
    prompts = versioned_prompts(tmp_path / "prompts")
    silent = prompt(version="0.9.0", arguments=[argument("who", required=True)])
    write_prompt(prompts, silent, f"{NAME}-0.9.0.yaml")
    app = versioned_app(prompts, llm)

    async with writing(app, "legacy") as mcp:
        with anyio.fail_after(10):
            (tool,) = [t for t in await mcp.list_tools() if t.name == TOOL]
        refused = await tool_error(mcp, {VERSION_ARGUMENT: "0.9.0", "who": "Ada"})

    assert "has no version '0.9.0' that generates documents" in refused
    assert tool.input_schema["properties"][VERSION_ARGUMENT]["enum"] == NEWEST_FIRST
    assert llm.requests == []


def tool_calls(log: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line]
    return [x for x in lines if x["event"] == "request" and x.get("mcp_method") == "tools/call"]


async def test_tool_calls_name_their_version_on_the_access_line_and_in_the_metrics(
    app: FastAPI, log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    async with serving(app, scope=None) as client:
        async with mcp_over_http(app, key=await issue_key(app, Scope.WRITE)) as mcp:
            with anyio.fail_after(10):
                await mcp.call_tool(TOOL, body_for(CURRENT))
                await mcp.call_tool(TOOL, {VERSION_ARGUMENT: "2.0.0", **body_for("2.0.0")})
                for pin in ("9.9.9", "1.0.0"):
                    with pytest.raises(ToolError):
                        await mcp.call_tool(TOOL, {VERSION_ARGUMENT: pin})
        scraped = await scrape(client)

    current, deprecated, unknown, invalid = tool_calls(log)
    assert (current["prompt_version"], current["level"]) == (CURRENT, "info")
    assert (deprecated["prompt_version"], deprecated["warning"]) == (
        "2.0.0",
        "deprecated_prompt_version",
    )
    assert "prompt_version" not in unknown
    assert invalid["prompt_version"] == "1.0.0"
    assert counted(scraped, "tools/call") == {
        (TOOL, CURRENT, "ok"): 1,
        (TOOL, "2.0.0", "ok"): 1,
        (TOOL, "", "error"): 1,
        (TOOL, "1.0.0", "error"): 1,
    }


def test_versions_with_the_same_arguments_keep_the_current_schema_strict(tmp_path: Path) -> None:
    for version, words in (("1.0.0", "Who to greet."), ("1.1.0", "The person greeted.")):
        declared = argument("who", required=True, description=words)
        write_prompt(tmp_path, prompt(version=version, arguments=[declared]), f"{version}.yaml")
    catalog = load_catalog(tmp_path)
    current = catalog.get(NAME)

    schema = input_schema(current, catalog.versions(NAME))

    assert schema["properties"].pop(VERSION_ARGUMENT)["enum"] == ["1.1.0", "1.0.0"]
    assert schema == current.argument_model.model_json_schema()
    assert (schema["additionalProperties"], schema["required"]) == (False, ["who"])


def test_a_schema_admits_the_calls_of_versions_whose_arguments_differ(tmp_path: Path) -> None:
    with_count = [{"role": "user", "content": "Hi {{ who }} {{ count }}"}]
    for version, arguments, messages in (
        ("1.2.0", [argument("who", required=True), argument("count")], with_count),
        ("1.1.0", [argument("who"), argument("count", "integer")], with_count),
        ("1.0.0", [argument("who", required=True)], [{"role": "user", "content": "{{ who }}"}]),
    ):
        document = prompt(version=version, arguments=arguments, messages=messages)
        write_prompt(tmp_path, document, f"{version}.yaml")
    catalog = load_catalog(tmp_path)

    schema = input_schema(catalog.get(NAME), catalog.versions(NAME))

    assert "additionalProperties" not in schema  # 1.0.0 takes no `count`; still allowed
    assert "required" not in schema  # 1.1.0 calls may leave `who` out
    assert set(schema["properties"]) == {"who", "count", VERSION_ARGUMENT}
    count = schema["properties"]["count"]
    assert [branch["anyOf"][0]["type"] for branch in count["anyOf"]] == ["string", "integer"]
