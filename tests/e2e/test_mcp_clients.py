"""Real MCP clients against a real uvicorn process, in both transport modes."""

from collections.abc import Mapping

import anyio
import httpx
import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp import Client as SdkClient
from mcp import MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS, TextContent
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from infrastructure.catalog.loader import load_catalog
from tests.e2e.inspector import json_document, run_inspector
from tests.e2e.server import RunningServer
from tests.mcp_messages import initialize

pytestmark = pytest.mark.anyio

CATALOG = load_catalog()
EXAMPLE = CATALOG.get("context_stack").definition.example_arguments
TIMEOUT = 30


def bearer(key: str) -> dict[str, str]:
    """The header MCP clients send."""
    return {"Authorization": f"Bearer {key}"}


def wire_arguments(values: Mapping[str, object]) -> dict[str, str]:
    """Prompt arguments as MCP sends them: every value a string."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def expected_text(name: str, values: Mapping[str, object]) -> str:
    """What the catalog itself renders, for comparing with what a client received."""
    return CATALOG.get(name).render(values).messages[0].text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_fastmcp_client_lists_and_renders_every_prompt(server: RunningServer) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(StreamableHttpTransport(server.mcp_url, auth=server.key)) as client:
            listed = await client.list_prompts()
            assert [p.name for p in listed] == [e.name for e in CATALOG]
            for entry in CATALOG:
                example = entry.definition.example_arguments
                result = await client.get_prompt(entry.name, wire_arguments(example))
                content = result.messages[0].content
                assert isinstance(content, TextContent)
                assert content.text == expected_text(entry.name, example)


async def test_fastmcp_client_gets_invalid_params_naming_the_argument(
    server: RunningServer,
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with Client(StreamableHttpTransport(server.mcp_url, auth=server.key)) as client:
            with pytest.raises(MCPError) as raised:
                await client.get_prompt("context_stack", {"task": "only the task"})
    assert raised.value.error.code == INVALID_PARAMS
    assert "domain" in raised.value.error.message


@pytest.mark.parametrize("mode", ["auto", "2026-07-28", "legacy"])
async def test_official_sdk_client_lists_and_renders_in_each_era(
    server: RunningServer, mode: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            httpx2.AsyncClient(headers=bearer(server.key), timeout=TIMEOUT) as http,
            SdkClient(
                streamable_http_client(server.mcp_url, http_client=http), mode=mode
            ) as client,
        ):
            expected_version = "2026-07-28" if mode != "legacy" else LATEST_HANDSHAKE_VERSION
            assert client.protocol_version == expected_version
            if mode != "2026-07-28":  # a pinned client skips discovery: it asks nothing up front
                assert client.server_info is not None
                assert client.server_info.name == "ctxfy"
            listed = await client.list_prompts()
            by_name = {p.name: p for p in listed.prompts}
            assert set(by_name) == {e.name for e in CATALOG}
            required = {a.name for a in by_name["context_stack"].arguments or [] if a.required}
            assert required == {"task", "domain"}
            result = await client.get_prompt("context_stack", wire_arguments(EXAMPLE))
            content = result.messages[0].content
            assert isinstance(content, TextContent)
            assert content.text == expected_text("context_stack", EXAMPLE)
            with pytest.raises(MCPError) as raised:
                await client.get_prompt("no_such_prompt", {})
            assert raised.value.error.code == INVALID_PARAMS


def test_inspector_cli_lists_prompts(inspector_cli: list[str], server: RunningServer) -> None:
    completed = run_inspector(inspector_cli, server, "--method", "prompts/list")
    assert completed.returncode == 0, completed.stderr
    prompts = json_document(completed.stdout)["prompts"]
    assert isinstance(prompts, list)
    assert [p["name"] for p in prompts] == [e.name for e in CATALOG]


def test_inspector_cli_renders_a_prompt(inspector_cli: list[str], server: RunningServer) -> None:
    pairs = [f"{k}={v}" for k, v in wire_arguments(EXAMPLE).items()]
    completed = run_inspector(
        inspector_cli,
        server,
        "--method",
        "prompts/get",
        "--prompt-name",
        "context_stack",
        "--prompt-args",
        *pairs,
    )
    assert completed.returncode == 0, completed.stderr
    messages = json_document(completed.stdout)["messages"]
    assert isinstance(messages, list)
    assert messages[0]["content"]["text"] == expected_text("context_stack", EXAMPLE)


def test_inspector_cli_reports_a_missing_argument(
    inspector_cli: list[str], server: RunningServer
) -> None:
    completed = run_inspector(
        inspector_cli,
        server,
        "--method",
        "prompts/get",
        "--prompt-name",
        "context_stack",
        "--prompt-args",
        "task=only the task",
    )
    assert completed.returncode != 0
    output = completed.stdout + completed.stderr
    assert "-32602" in output
    assert "domain" in output


def test_plain_post_to_mcp_initializes_without_redirect(server: RunningServer) -> None:
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
        for path in ("/mcp", "/mcp/"):
            response = http.post(
                server.base_url + path,
                json=initialize("curl"),
                headers={"accept": "*/*", **bearer(server.key)},
            )
            assert response.status_code == 200, response.text
            assert '"serverInfo"' in response.text


def test_rest_preview_matches_mcp_over_real_http(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        response = http.post(
            "/v1/prompts/context_stack/preview", json=EXAMPLE, headers=bearer(server.key)
        )
        ready = http.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["messages"][0]["content"]["text"] == expected_text(
        "context_stack", EXAMPLE
    )
    assert ready.status_code == 200
