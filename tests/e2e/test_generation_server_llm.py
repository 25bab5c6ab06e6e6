"""Document generation with the server-side LLM: a fake OpenAI-compatible server on
127.0.0.1 behind real ``ctxfy serve`` processes, reached over MCP and REST."""

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.types import TextContent
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.catalog.loader import load_catalog
from tests.e2e.fake_llm import FakeLlm, Reply, fake_llm
from tests.e2e.inspector import json_document, run_inspector
from tests.e2e.server import RunningServer, running_server
from tests.fakes import ClientLlm, said

pytestmark = pytest.mark.anyio

CATALOG = load_catalog()
PROMPT = "context_stack"
TOOL = f"generate_{PROMPT}"
GENERATE = f"/v1/prompts/{PROMPT}/generate"
DEFINITION = CATALOG.get(PROMPT).definition
EXAMPLE = DEFINITION.example_arguments
UPSTREAM_KEY = "sk-upstream-e2e-0123456789"
OPERATOR_MODEL = "operator-model"
REPLY = Reply(text="# Stack\nFrom the server's LLM.", model="fake-model-0613")
LLM_TIMEOUT = 2
TIMEOUT = 30


def llm_env(fake: FakeLlm, **overrides: str) -> dict[str, str]:
    return {
        "CTXFY_MCP_STATELESS": "false",
        "CTXFY_DRAIN_SECONDS": "0",
        "CTXFY_LLM_BASE_URL": fake.base_url,
        "CTXFY_LLM_API_KEY": UPSTREAM_KEY,
        "CTXFY_LLM_MODEL": OPERATOR_MODEL,
        "CTXFY_LLM_TIMEOUT_SECONDS": str(LLM_TIMEOUT),
        "CTXFY_LLM_MAX_RETRIES": "0",
        # One key generates many times a minute here; the budget has tests of its own.
        "CTXFY_RATE_LIMIT_GENERATE": "off",
        **overrides,
    }


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeLlm]:
    with fake_llm() as fake:
        yield fake


@pytest.fixture
def upstream(fake_server: FakeLlm) -> Iterator[FakeLlm]:
    """The fake, replying ``REPLY`` with nothing seen yet; hanging requests end afterwards."""
    fake_server.reset()
    fake_server.reply(REPLY)
    yield fake_server
    fake_server.reset()


@pytest.fixture(scope="module")
def server(
    fake_server: FakeLlm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The default policy (fallback) with a breaker too patient to open in these tests."""
    env = llm_env(fake_server, CTXFY_LLM_BREAKER_FAILURES="100")
    with running_server(tmp_path_factory.mktemp("gen-llm"), env, scope="write") as started:
        yield started


@pytest.fixture(scope="module")
def fragile(
    fake_server: FakeLlm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A breaker that opens after two failures."""
    env = llm_env(fake_server, CTXFY_LLM_BREAKER_FAILURES="2")
    with running_server(tmp_path_factory.mktemp("gen-breaker"), env, scope="write") as started:
        yield started


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def generate(server: RunningServer, request_id: str | None = None) -> httpx.Response:
    headers = bearer(server.key) | ({"X-Request-ID": request_id} if request_id else {})
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        return http.post(GENERATE, json=EXAMPLE, headers=headers)


def assert_written_by_the_fake(fields: dict[str, Any]) -> None:
    assert fields["prompt"] == PROMPT
    assert fields["document"] == REPLY.text
    assert (fields["route"], fields["provider"], fields["model"]) == (
        "server",
        "openai-compatible",
        REPLY.model,
    )
    assert (fields["input_tokens"], fields["output_tokens"]) == (
        REPLY.prompt_tokens,
        REPLY.completion_tokens,
    )
    assert fields["latency_ms"] >= 0


def assert_asked_properly(fake: FakeLlm, server: RunningServer) -> None:
    """One request: the operator's key and model, the prompt's messages and settings."""
    generation = DEFINITION.generation
    assert generation is not None
    [seen] = fake.requests
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert server.key not in json.dumps([seen.headers, seen.body])
    assert seen.body["model"] == OPERATOR_MODEL
    assert seen.body["messages"] == [
        {"role": "system", "content": generation.system_prompt},
        {"role": "user", "content": CATALOG.get(PROMPT).render(EXAMPLE).messages[0].text},
    ]
    assert seen.body["max_tokens"] == generation.max_tokens
    assert seen.body["temperature"] == generation.temperature


def access_line_of(request_id: str) -> Callable[[str], bool]:
    """Matches the one access line (event "request") of the request with ``request_id``."""

    def matches(line: str) -> bool:
        try:
            fields = json.loads(line)
        except ValueError:
            return False
        return (
            isinstance(fields, dict)
            and fields.get("event") == "request"
            and (fields.get("request_id") == request_id)
        )

    return matches


def llm_requests(server: RunningServer, outcome: str) -> float:
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        scrape = http.get("/metrics")
    assert scrape.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.name == "ctxfy_llm_requests_total"
        and sample.labels
        == {"provider": "openai-compatible", "model": OPERATOR_MODEL, "outcome": outcome}
    )


async def test_an_mcp_client_without_sampling_gets_the_server_llms_document(
    server: RunningServer, upstream: FakeLlm
) -> None:
    with anyio.fail_after(TIMEOUT):
        transport = StreamableHttpTransport(server.mcp_url, headers=bearer(server.key))
        async with Client(transport) as client:
            result = await client.call_tool(TOOL, EXAMPLE)
    assert [block.text for block in result.content if isinstance(block, TextContent)] == [
        REPLY.text
    ]
    assert_written_by_the_fake(result.structured_content or {})
    assert_asked_properly(upstream, server)


def test_the_inspector_cli_gets_the_server_llms_document(
    inspector_cli: list[str], server: RunningServer, upstream: FakeLlm
) -> None:
    pairs = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in EXAMPLE.items()]
    completed = run_inspector(
        inspector_cli, server, "--method", "tools/call", "--tool-name", TOOL, "--tool-arg", *pairs
    )
    assert completed.returncode == 0, completed.stderr
    result = json_document(completed.stdout)
    assert result.get("isError") is not True, result
    structured = result["structuredContent"]
    assert isinstance(structured, dict)
    assert_written_by_the_fake(structured)
    assert_asked_properly(upstream, server)


async def test_under_fallback_a_client_that_samples_is_asked_instead_of_the_server(
    server: RunningServer, upstream: FakeLlm
) -> None:
    with anyio.fail_after(TIMEOUT):
        transport = StreamableHttpTransport(server.mcp_url, headers=bearer(server.key))
        async with Client(transport, sampling_handler=ClientLlm(said("from the client"))) as client:
            result = await client.call_tool(TOOL, EXAMPLE)
    structured = result.structured_content or {}
    assert (structured["route"], structured["document"]) == ("client", "from the client")
    assert upstream.requests == []


def test_rest_generation_returns_and_logs_the_server_llms_document(
    server: RunningServer, upstream: FakeLlm
) -> None:
    response = generate(server, request_id="gen-rest-ok")
    assert response.status_code == 200, response.text
    assert_written_by_the_fake(response.json())
    assert_asked_properly(upstream, server)

    access = json.loads(server.wait_for_line(access_line_of("gen-rest-ok")))
    assert access["path"] == GENERATE
    assert (access["llm_route"], access["llm_provider"], access["llm_model"]) == (
        "server",
        "openai-compatible",
        REPLY.model,
    )
    assert (access["llm_input_tokens"], access["llm_output_tokens"]) == (
        REPLY.prompt_tokens,
        REPLY.completion_tokens,
    )
    assert access["llm_latency_ms"] >= 0


def test_metrics_count_each_server_llm_request(server: RunningServer, upstream: FakeLlm) -> None:
    before = llm_requests(server, "ok")
    assert generate(server).status_code == 200
    assert llm_requests(server, "ok") == before + 1


def test_an_upstream_that_hangs_is_a_504_within_the_timeout_plus_one_second(
    server: RunningServer, upstream: FakeLlm
) -> None:
    upstream.hang()
    started = time.monotonic()
    response = generate(server)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"] == "llm_timeout"
    assert len(upstream.requests) == 1
    assert elapsed < LLM_TIMEOUT + 1


@pytest.mark.parametrize(
    ("upstream_status", "status", "error"),
    [(500, 502, "llm_unavailable"), (400, 502, "llm_rejected"), (429, 503, "llm_rate_limited")],
)
def test_an_upstream_error_status_becomes_a_coded_gateway_error(
    server: RunningServer, upstream: FakeLlm, upstream_status: int, status: int, error: str
) -> None:
    upstream.fail(upstream_status, retry_after="1" if upstream_status == 429 else None)
    response = generate(server)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert set(response.json()) == {"error", "message", "details", "request_id"}
    assert UPSTREAM_KEY not in response.text
    assert len(upstream.requests) == 1


async def test_an_mcp_client_gets_an_upstream_failure_as_a_coded_tool_error(
    server: RunningServer, upstream: FakeLlm
) -> None:
    upstream.fail(500)
    with anyio.fail_after(TIMEOUT):
        transport = StreamableHttpTransport(server.mcp_url, headers=bearer(server.key))
        async with Client(transport) as client:
            result = await client.call_tool(TOOL, EXAMPLE, raise_on_error=False)
    assert result.is_error
    [block] = result.content
    assert isinstance(block, TextContent)
    assert block.text.startswith("llm_unavailable:")


def test_after_repeated_failures_the_breaker_refuses_without_calling_upstream(
    fragile: RunningServer, upstream: FakeLlm
) -> None:
    upstream.fail(500)
    failures = [generate(fragile).status_code for _ in range(2)]
    refused = generate(fragile)
    assert failures == [502, 502]
    assert refused.status_code == 503
    assert refused.json()["error"] == "llm_circuit_open"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(upstream.requests) == 2
