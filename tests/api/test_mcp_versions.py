"""Prompt versions over MCP: ``prompts/list`` shows each prompt once with the versions it has,
``prompts/get`` renders ``name@version`` pinned and ``name`` current, in both eras, and the
version reaches results, completions, the access line and the metrics."""

import io
import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastmcp import Client
from mcp import MCPError
from mcp.types import INVALID_PARAMS, GetPromptResult, PromptReference, TextContent
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.metrics import MULTIPROC_ENV
from tests.api.catalog_files import (
    CURRENT,
    NAME,
    body_for,
    rendered,
    versioned_app,
    versioned_prompts,
)
from tests.api.harness import issue_key, mcp_over_http, serving, state_of
from tests.fakes import ScriptedLlm

pytestmark = pytest.mark.anyio

ERAS = pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
NEWEST_FIRST = ["2.0.0", "1.1.0", "1.0.0"]


@pytest.fixture
def app(tmp_path: Path, llm: ScriptedLlm) -> FastAPI:
    return versioned_app(versioned_prompts(tmp_path / "prompts"), llm)


async def get(app: FastAPI, mode: str, name: str, arguments: dict[str, str]) -> GetPromptResult:
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode=mode) as mcp:
            result: GetPromptResult = await mcp.get_prompt(name, arguments)
    return result


async def refused(app: FastAPI, mode: str, name: str, arguments: dict[str, str]) -> MCPError:
    with anyio.fail_after(10), pytest.raises(MCPError) as caught:
        await get(app, mode, name, arguments)
    assert caught.value.error.code == INVALID_PARAMS
    return caught.value


def served(result: GetPromptResult) -> tuple[str, bool]:
    """The version a result says it rendered, and whether it is deprecated."""
    assert result.meta is not None
    return result.meta["version"], result.meta["deprecated"]


def text(result: GetPromptResult) -> str:
    (message,) = result.messages
    assert isinstance(message.content, TextContent)
    return message.content.text


@ERAS
@pytest.mark.parametrize("version", NEWEST_FIRST)
async def test_a_pinned_name_renders_that_version_and_says_so(
    app: FastAPI, mode: str, version: str
) -> None:
    result = await get(app, mode, f"{NAME}@{version}", body_for(version))

    assert text(result) == rendered(version)
    assert served(result) == (version, version == "2.0.0")


@ERAS
async def test_a_plain_name_renders_the_newest_version_that_is_not_deprecated(
    app: FastAPI, mode: str
) -> None:
    result = await get(app, mode, NAME, body_for(CURRENT))

    assert text(result) == rendered(CURRENT)
    assert served(result) == (CURRENT, False)


@ERAS
async def test_a_pinned_version_validates_its_own_arguments_not_the_current_ones(
    app: FastAPI, mode: str
) -> None:
    error = await refused(app, mode, f"{NAME}@1.0.0", body_for(CURRENT))

    assert isinstance(error.error.data, dict)
    assert {e["field"] for e in error.error.data["errors"]} == {"who", "person"}


@ERAS
@pytest.mark.parametrize("version", ["9.9.9", "1.0", "", "latest"])
async def test_an_unknown_version_is_invalid_params_naming_the_versions_that_exist(
    app: FastAPI, mode: str, version: str
) -> None:
    error = await refused(app, mode, f"{NAME}@{version}", {})

    assert all(v in error.error.message for v in NEWEST_FIRST)
    assert error.error.data == {"prompt": NAME, "version": version, "versions": NEWEST_FIRST}


@ERAS
async def test_prompts_list_shows_each_prompt_once_with_its_version_and_the_versions_it_has(
    app: FastAPI, mode: str
) -> None:
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode=mode) as mcp:
            listed = await mcp.list_prompts()

    names = [p.name for p in listed]
    assert names.count(NAME) == 1
    assert not [n for n in names if "@" in n]
    (greet,) = [p for p in listed if p.name == NAME]
    assert greet.meta is not None
    assert (greet.meta["version"], greet.meta["deprecated"]) == (CURRENT, False)
    assert (greet.meta["versions"], greet.meta["generates"]) == (NEWEST_FIRST, True)
    assert [a.name for a in greet.arguments or ()] == list(body_for(CURRENT))


@ERAS
async def test_arguments_of_a_pinned_prompt_complete_from_that_version(
    tmp_path: Path, mode: str
) -> None:
    prompts = versioned_prompts(tmp_path / "prompts")
    pinned = (prompts / f"{NAME}-1.0.0.yaml").read_text()
    suggesting = pinned.replace("required: true", "suggestions: [Ada, Grace]")
    (prompts / f"{NAME}-1.0.0.yaml").write_text(suggesting)
    app = versioned_app(prompts)

    async def completed(name: str) -> list[str]:
        with anyio.fail_after(10):
            async with Client(state_of(app).mcp, mode=mode) as mcp:
                reference = PromptReference(type="ref/prompt", name=name)
                done = await mcp.complete(reference, {"name": "who", "value": "gr"})
        values: list[str] = done.values
        return values

    assert await completed(f"{NAME}@1.0.0") == ["Grace"]
    assert await completed(NAME) == []  # the current version has no argument `who`
    assert await completed(f"{NAME}@9.9.9") == []


def access_lines(log: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line]
    return [x for x in lines if x["event"] == "request" and x.get("mcp_method") == "prompts/get"]


async def test_the_access_line_names_the_version_served_and_warns_of_a_deprecated_one(
    app: FastAPI, log: io.StringIO
) -> None:
    async with serving(app) as client:
        async with mcp_over_http(app, key=await issue_key(app)) as mcp:
            with anyio.fail_after(10):
                await mcp.get_prompt(NAME, body_for(CURRENT))
                await mcp.get_prompt(f"{NAME}@2.0.0", body_for("2.0.0"))
                with pytest.raises(MCPError):
                    await mcp.get_prompt(f"{NAME}@1.0.0", {})
        assert client is not None

    current, deprecated, invalid = access_lines(log)
    assert (current["prompt"], current["prompt_version"], current["level"]) == (
        NAME,
        CURRENT,
        "info",
    )
    assert "warning" not in current
    assert (deprecated["prompt_version"], deprecated["level"]) == ("2.0.0", "warning")
    assert deprecated["warning"] == "deprecated_prompt_version"
    assert (invalid["mcp_outcome"], invalid["prompt_version"]) == ("error", "1.0.0")


async def test_prompt_requests_are_counted_by_the_version_served(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    async with serving(app) as client:
        async with mcp_over_http(app, key=await issue_key(app)) as mcp:
            with anyio.fail_after(10):
                await mcp.get_prompt(NAME, body_for(CURRENT))
                await mcp.get_prompt(f"{NAME}@1.0.0", body_for("1.0.0"))
                for name in (f"{NAME}@1.0.0", f"{NAME}@7.7.7", "no_such_prompt@1.0.0"):
                    with pytest.raises(MCPError):
                        await mcp.get_prompt(name, {})
        scraped = await scrape(client)

    assert counted(scraped, "prompts/get") == {
        (NAME, CURRENT, "ok"): 1,
        (NAME, "1.0.0", "ok"): 1,
        (NAME, "1.0.0", "error"): 1,
        (NAME, "", "error"): 1,  # the prompt exists, that version does not
        ("unknown", "", "error"): 1,
    }


async def scrape(client: httpx.AsyncClient) -> str:
    with anyio.fail_after(10):
        response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    return response.text


def counted(scraped: str, method: str) -> dict[tuple[str, str, str], float]:
    """``ctxfy_mcp_requests_total`` of ``method`` by name, version and outcome."""
    (family,) = [
        f for f in text_string_to_metric_families(scraped) if f.name == "ctxfy_mcp_requests"
    ]
    return {
        (s.labels["name"], s.labels["version"], s.labels["outcome"]): s.value
        for s in family.samples
        if s.name == "ctxfy_mcp_requests_total" and s.labels["method"] == method
    }
