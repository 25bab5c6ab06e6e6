"""Document generation with the MCP client's own LLM, and every refusal when there is none.

Real ``ctxfy serve`` processes with no server-side LLM configured; real clients. The client's
LLM is a deterministic sampling handler that remembers what it was asked.
"""

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp import Client as SdkClient
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CreateMessageRequestParams, CreateMessageResult, TextContent

from infrastructure.catalog.loader import load_catalog
from tests.e2e.server import RunningServer, ctxfy, running_server
from tests.fakes import ClientLlm, said

pytestmark = pytest.mark.anyio

CATALOG = load_catalog()
PROMPT = "context_stack"
TOOL = f"generate_{PROMPT}"
DEFINITION = CATALOG.get(PROMPT).definition
EXAMPLE = DEFINITION.example_arguments
GENERATING = {f"generate_{e.name}" for e in CATALOG if e.definition.generation is not None}
CLIENT_TEXT = "# Context stack\nWritten by the client's own LLM."
CLIENT_MODEL = "e2e-model"
SAMPLING_TIMEOUT = 2
TIMEOUT = 30


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def stateful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Stateful, no server-side LLM: only a client that samples can generate."""
    env = {
        "CTXFY_MCP_STATELESS": "false",
        "CTXFY_DRAIN_SECONDS": "0",
        "CTXFY_LLM_SAMPLING_TIMEOUT_SECONDS": str(SAMPLING_TIMEOUT),
        # One key generates many times a minute here; the budget has tests of its own.
        "CTXFY_RATE_LIMIT_GENERATE": "off",
    }
    with running_server(tmp_path_factory.mktemp("gen-client"), env, scope="write") as server:
        yield server


@pytest.fixture(scope="module")
def stateless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Stateless, client-only policy: only 2026-07-28 clients' LLMs can be asked."""
    env = {
        "CTXFY_MCP_STATELESS": "true",
        "CTXFY_DRAIN_SECONDS": "0",
        "CTXFY_LLM_MODE": "client",
        "CTXFY_RATE_LIMIT_GENERATE": "off",
    }
    with running_server(tmp_path_factory.mktemp("gen-stateless"), env, scope="write") as server:
        yield server


@pytest.fixture(scope="module")
def reader(stateful: RunningServer) -> str:
    """A read-scope key on ``stateful``."""
    return ctxfy(stateful.env, "keys", "create", "--user", "reader", "--scope", "read").strip()


class Progress:
    """Records the progress notifications of one call."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total, message))


def mcp_client(
    server: RunningServer,
    key: str,
    llm: ClientLlm | None = None,
    request_id: str | None = None,
    *,
    mode: str = "auto",
) -> Client[Any]:
    headers = bearer(key) | ({"X-Request-ID": request_id} if request_id else {})
    transport = StreamableHttpTransport(server.mcp_url, headers=headers)
    return Client(transport, sampling_handler=llm, mode=mode)


# Each era asks the client's LLM its own way: a request on the legacy session's stream, or
# a 2026-07-28 input-required answer that the client retries with the LLM's text.
ERAS = pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["legacy", "2026-07-28"])


def logged(server: RunningServer, *parts: str) -> Callable[[], Awaitable[str]]:
    """Waits (bounded, in a thread) until one line of the server's output has every part."""

    def wait() -> str:
        return server.wait_for_line(lambda line: all(p in line for p in parts), TIMEOUT)

    return lambda: anyio.to_thread.run_sync(wait)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_text(content: list[Any]) -> str:
    return "\n".join(block.text for block in content if isinstance(block, TextContent))


async def test_every_prompt_that_generates_is_offered_as_a_generate_tool(
    stateful: RunningServer,
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with mcp_client(stateful, stateful.key) as client:
            tools = {tool.name for tool in await client.list_tools()}
    assert len(GENERATING) == 6
    assert tools >= GENERATING


@ERAS
async def test_a_client_that_samples_gets_a_document_written_by_its_own_llm(
    stateful: RunningServer, mode: str
) -> None:
    llm, progress = ClientLlm(said(CLIENT_TEXT, CLIENT_MODEL)), Progress()
    with anyio.fail_after(TIMEOUT):
        async with mcp_client(stateful, stateful.key, llm, mode=mode) as client:
            result = await client.call_tool(TOOL, EXAMPLE, progress_handler=progress)

    assert [block.text for block in result.content if isinstance(block, TextContent)] == [
        CLIENT_TEXT
    ]
    structured = result.structured_content or {}
    assert structured["prompt"] == PROMPT
    assert structured["document"] == CLIENT_TEXT
    assert (structured["route"], structured["provider"], structured["model"]) == (
        "client",
        "mcp-client",
        CLIENT_MODEL,
    )
    assert structured["latency_ms"] >= 0
    assert progress.seen, "a caller that sent a progress token hears progress"

    [asked] = llm.received
    generation = DEFINITION.generation
    assert generation is not None
    [message] = asked.messages
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    assert message.content.text == CATALOG.get(PROMPT).render(EXAMPLE).messages[0].text
    assert asked.system_prompt == generation.system_prompt
    assert asked.max_tokens == generation.max_tokens
    assert asked.temperature == generation.temperature


@ERAS
async def test_a_client_without_sampling_is_told_sampling_is_unavailable(
    stateful: RunningServer, mode: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with mcp_client(stateful, stateful.key, mode=mode) as client:
            result = await client.call_tool(TOOL, EXAMPLE, raise_on_error=False)
    assert result.is_error
    assert error_text(result.content).startswith("sampling_unavailable:")


async def test_a_legacy_client_llm_too_slow_for_the_sampling_timeout_is_an_llm_timeout(
    stateful: RunningServer,
) -> None:
    # The SDK client handles server requests one at a time, so the slow LLM must answer
    # (late) before the client can read the tool's result: it answers once the server
    # has logged the timeout of this client's request. (A 2026-07-28 client's LLM works
    # between two requests, where the server cannot time it; the sealed state expires.)
    request_id = "gen-slow-client-llm"
    llm = ClientLlm(
        said(CLIENT_TEXT, CLIENT_MODEL),
        until=logged(stateful, f'"request_id":"{request_id}"', "llm_timeout"),
    )
    with anyio.fail_after(TIMEOUT):
        async with mcp_client(stateful, stateful.key, llm, request_id, mode="legacy") as client:
            started = time.monotonic()
            result = await client.call_tool(TOOL, EXAMPLE, raise_on_error=False)
            elapsed = time.monotonic() - started
    assert result.is_error
    assert error_text(result.content).startswith("llm_timeout:")
    assert len(llm.received) == 1
    assert elapsed < SAMPLING_TIMEOUT + 1


def test_rest_generation_without_a_server_llm_is_503_llm_not_configured(
    stateful: RunningServer,
) -> None:
    with httpx.Client(base_url=stateful.base_url, timeout=TIMEOUT) as http:
        response = http.post(
            f"/v1/prompts/{PROMPT}/generate", json=EXAMPLE, headers=bearer(stateful.key)
        )
    assert response.status_code == 503
    assert response.json()["error"] == "llm_not_configured"


def test_a_read_key_may_not_generate_over_rest(stateful: RunningServer, reader: str) -> None:
    with httpx.Client(base_url=stateful.base_url, timeout=TIMEOUT) as http:
        preview = http.post(f"/v1/prompts/{PROMPT}/preview", json=EXAMPLE, headers=bearer(reader))
        generate = http.post(f"/v1/prompts/{PROMPT}/generate", json=EXAMPLE, headers=bearer(reader))
    assert preview.status_code == 200
    assert generate.status_code == 403
    assert generate.json()["error"] == "insufficient_scope"


async def test_a_read_key_may_neither_see_nor_call_the_generate_tools(
    stateful: RunningServer, reader: str
) -> None:
    llm = ClientLlm(said(CLIENT_TEXT, CLIENT_MODEL))
    with anyio.fail_after(TIMEOUT):
        async with mcp_client(stateful, reader, llm) as client:
            tools = {tool.name for tool in await client.list_tools()}
            result = await client.call_tool(TOOL, EXAMPLE, raise_on_error=False)
    assert not tools & GENERATING
    assert result.is_error
    assert result.structured_content is None
    assert llm.received == []


async def test_arguments_that_do_not_fit_the_prompt_are_invalid_arguments(
    stateful: RunningServer,
) -> None:
    llm = ClientLlm(said(CLIENT_TEXT, CLIENT_MODEL))
    with anyio.fail_after(TIMEOUT):
        async with mcp_client(stateful, stateful.key, llm) as client:
            result = await client.call_tool(TOOL, {"task": "only the task"}, raise_on_error=False)
    assert result.is_error
    text = error_text(result.content)
    assert text.startswith("invalid_arguments:")
    assert "domain" in text
    assert llm.received == []


async def test_a_stateless_server_refuses_legacy_client_sampling_at_once_saying_why(
    stateless: RunningServer,
) -> None:
    llm = ClientLlm(said(CLIENT_TEXT, CLIENT_MODEL))
    with anyio.fail_after(10):
        async with mcp_client(stateless, stateless.key, llm, mode="legacy") as client:
            result = await client.call_tool(TOOL, EXAMPLE, raise_on_error=False)
    assert result.is_error
    text = error_text(result.content)
    assert text.startswith("sampling_unavailable:")
    assert "stateless" in text
    assert llm.received == []


async def test_a_stateless_server_samples_a_2026_07_28_clients_llm_in_its_answer(
    stateless: RunningServer,
) -> None:
    llm = ClientLlm(said(CLIENT_TEXT, CLIENT_MODEL))
    with anyio.fail_after(10):
        async with mcp_client(stateless, stateless.key, llm) as client:
            result = await client.call_tool(TOOL, EXAMPLE)
    assert (result.structured_content or {})["route"] == "client"
    assert len(llm.received) == 1


async def sdk_sampling(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
    """The official SDK client's sampling callback: the client's own LLM."""
    return said(CLIENT_TEXT, CLIENT_MODEL)


@pytest.mark.parametrize("mode", ["auto", "2026-07-28", "legacy"])
@pytest.mark.parametrize("sampling", [True, False], ids=["sampling", "no-sampling"])
async def test_the_official_sdk_client_generates_with_its_llm_or_hears_why_not(
    stateful: RunningServer, mode: str, sampling: bool
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            httpx2.AsyncClient(headers=bearer(stateful.key), timeout=TIMEOUT) as http,
            SdkClient(
                streamable_http_client(stateful.mcp_url, http_client=http),
                mode=mode,
                sampling_callback=sdk_sampling if sampling else None,
            ) as client,
        ):
            result = await client.call_tool(TOOL, EXAMPLE)

    if sampling:
        assert not result.is_error, error_text(result.content)
        structured = result.structured_content or {}
        assert (structured["route"], structured["model"]) == ("client", CLIENT_MODEL)
        assert error_text(result.content) == CLIENT_TEXT
    else:
        assert result.is_error
        assert error_text(result.content).startswith("sampling_unavailable:")
