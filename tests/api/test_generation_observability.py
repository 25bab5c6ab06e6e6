"""What a generation leaves behind: ``llm_*`` fields on its access line, and LLM metrics."""

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from domain.llm import LlmTimeout
from tests.api.harness import issue_key, mcp_over_http, serving
from tests.fakes import ScriptedLlm, completion

pytestmark = pytest.mark.anyio

MODEL = "gpt-test-2026"
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
GENERATE = "/v1/prompts/context_stack/generate"
SERVER_ANSWER = {
    "llm_route": "server",
    "llm_provider": "openai-compatible",
    "llm_model": MODEL,
    "llm_input_tokens": 120,
    "llm_output_tokens": 30,
    "llm_latency_ms": 12.3,
}


@pytest.fixture(params=[False, True], ids=["stateful", "stateless"])
def app(request: pytest.FixtureRequest, log: io.StringIO, llm: ScriptedLlm) -> FastAPI:
    """Overrides the conftest app: logging captured, a faked server-side LLM, each MCP mode."""
    settings = Settings(
        llm_base_url="https://llm.test/v1", llm_model=MODEL, mcp_stateless=request.param
    )
    return create_app(settings, server_llm=llm)


@pytest.fixture
async def writer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, Scope.WRITE) as client:
        yield client


def access_lines(log: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line]
    return [line for line in lines if line["event"] == "request"]


def llm_fields(line: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in line.items() if name.startswith("llm_")}


def llm_series(exposition: str) -> dict[tuple[str, str, str, str], float]:
    """LLM counters by metric, provider, model, and outcome or token direction."""
    series: dict[tuple[str, str, str, str], float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in ("ctxfy_llm_requests_total", "ctxfy_llm_tokens_total"):
                labels = sample.labels
                kind = labels.get("outcome") or labels["direction"]
                series[sample.name, labels["provider"], labels["model"], kind] = sample.value
    return series


async def post(client: httpx.AsyncClient, body: object) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post(GENERATE, json=body)


async def test_a_rest_generation_logs_which_llm_wrote_it_and_what_it_cost(
    log: io.StringIO, writer: httpx.AsyncClient
) -> None:
    await post(writer, CONTEXT_STACK)

    (line,) = [line for line in access_lines(log) if line["path"] == GENERATE]
    assert line["status"] == 200
    assert llm_fields(line) == SERVER_ANSWER


@pytest.mark.parametrize("llm", [(LlmTimeout("took too long"),)], indirect=True)
async def test_a_failed_rest_generation_logs_its_error_code(
    log: io.StringIO, writer: httpx.AsyncClient
) -> None:
    await post(writer, CONTEXT_STACK)

    (line,) = [line for line in access_lines(log) if line["path"] == GENERATE]
    assert line["status"] == 504
    assert llm_fields(line) == {"llm_route": "server", "llm_error": "llm_timeout"}


async def test_a_generation_no_llm_may_serve_logs_the_refusal_and_counts_no_llm_call(
    log: io.StringIO,
) -> None:
    without_server_llm = create_app(Settings())  # client mode: REST has no LLM to ask
    async with serving(without_server_llm, Scope.WRITE) as writer:
        await post(writer, CONTEXT_STACK)
        scraped = await writer.get("/metrics")

    (line,) = [line for line in access_lines(log) if line["path"] == GENERATE]
    assert line["status"] == 503
    assert llm_fields(line) == {"llm_error": "llm_not_configured"}
    assert llm_series(scraped.text) == {}


async def test_a_tool_call_over_http_logs_the_llm_on_its_access_line(
    app: FastAPI, log: io.StringIO, writer: httpx.AsyncClient
) -> None:
    key = await issue_key(app, Scope.WRITE)
    with anyio.fail_after(10):
        async with mcp_over_http(app, key=key) as mcp:
            await mcp.call_tool("generate_context_stack", CONTEXT_STACK)

    (line,) = [line for line in access_lines(log) if line.get("mcp_method") == "tools/call"]
    assert (line["mcp_name"], line["mcp_outcome"]) == ("generate_context_stack", "ok")
    assert llm_fields(line) == SERVER_ANSWER


@pytest.mark.parametrize(
    "llm",
    [(completion(), completion(input_tokens=80, output_tokens=20), LlmTimeout("slow"))],
    indirect=True,
)
async def test_metrics_count_generations_by_outcome_with_their_tokens(
    writer: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        await post(writer, CONTEXT_STACK)

    with anyio.fail_after(10):
        scraped = await writer.get("/metrics", headers={"Authorization": ""})
    assert llm_series(scraped.text) == {
        ("ctxfy_llm_requests_total", "openai-compatible", MODEL, "ok"): 2,
        ("ctxfy_llm_requests_total", "openai-compatible", MODEL, "error"): 1,
        ("ctxfy_llm_tokens_total", "openai-compatible", MODEL, "input"): 200,
        ("ctxfy_llm_tokens_total", "openai-compatible", MODEL, "output"): 50,
    }
