"""MCP over streamable HTTP at the real ``/mcp`` mount, through ASGI, in both modes."""

from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from mcp import MCPError
from mcp.types import INVALID_PARAMS, TextContent

from app.main import create_app
from app.settings import Settings
from tests.api.harness import catalog_of, issue_key, mcp_over_http
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio

INITIALIZE = initialize("ctxfy-api-tests")
PATHS = [pytest.param("/mcp", id="no-slash"), pytest.param("/mcp/", id="slash")]


@pytest.fixture(params=[False, True], ids=["stateful", "stateless"])
def stateless(request: pytest.FixtureRequest) -> bool:
    mode: bool = request.param
    return mode


@pytest.fixture
def app(stateless: bool) -> FastAPI:
    """Overrides the conftest app, so ``client`` serves each MCP mode in turn."""
    return create_app(Settings(mcp_stateless=stateless))


@pytest.mark.parametrize("path", PATHS)
async def test_initialize_is_answered_at_the_mount_without_a_redirect(
    client: httpx.AsyncClient, stateless: bool, path: str
) -> None:
    with anyio.fail_after(10):
        response = await client.post(path, json=INITIALIZE, headers=ACCEPT)

    assert response.status_code == 200
    assert not response.history
    content_type = response.headers["content-type"]
    if stateless:
        assert content_type.startswith("application/json")
        assert "mcp-session-id" not in response.headers
        assert response.json()["result"]["serverInfo"]["name"] == "ctxfy"
    else:
        assert content_type.startswith("text/event-stream")
        assert response.headers["mcp-session-id"]
        assert '"serverInfo":{"name":"ctxfy"' in response.text


@pytest.mark.parametrize("path", PATHS)
async def test_an_mcp_client_lists_and_renders_prompts_over_http(
    app: FastAPI, client: httpx.AsyncClient, path: str
) -> None:
    arguments = {"task": "Rotate the signing keys.", "domain": "identity platform"}
    preview = await client.post("/v1/prompts/context_stack/preview", json=arguments)

    with anyio.fail_after(10):
        async with mcp_over_http(app, path, key=await issue_key(app)) as mcp:
            listed = await mcp.list_prompts()
            result = await mcp.get_prompt("context_stack", arguments)

    assert [p.name for p in listed] == [entry.name for entry in catalog_of(app)]
    rendered: list[dict[str, Any]] = []
    for message in result.messages:
        assert isinstance(message.content, TextContent)
        rendered.append({"role": message.role, "text": message.content.text})
    assert rendered == [
        {"role": m["role"], "text": m["content"]["text"]} for m in preview.json()["messages"]
    ]


async def test_invalid_arguments_over_http_are_invalid_params_naming_them(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    with anyio.fail_after(10):
        async with mcp_over_http(app, key=await issue_key(app)) as mcp:
            with pytest.raises(MCPError) as caught:
                await mcp.get_prompt("context_stack", {"task": "Rotate the signing keys."})

    assert caught.value.error.code == INVALID_PARAMS
    assert caught.value.error.data == {
        "prompt": "context_stack",
        "errors": [{"field": "domain", "message": "Field required", "type": "missing"}],
    }
