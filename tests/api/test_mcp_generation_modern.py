"""2026-07-28 generation over HTTP: the client's LLM is asked in the tool's answer, and the
sealed request state binds the retry to the caller, the call and the server's keys."""

import io
import json
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastmcp import Client

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from tests.api.harness import asgi_client, bearer, issue_key, mcp_over_http, serving
from tests.fakes import ClientLlm, ScriptedLlm, said

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
TOOL = "generate_context_stack"
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
STATE_KEYS = "a-shared-request-state-key-of-32-bytes+,an-older-one-still-unsealing-000000"
SAMPLING_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
}
ANSWER = {"llm": {"role": "assistant", "content": {"type": "text", "text": "Raw."}, "model": "m"}}


def tool_calls(log: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line]
    return [x for x in lines if x["event"] == "request" and x.get("mcp_method") == "tools/call"]


async def call_raw(
    client: httpx.AsyncClient, key: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    """One 2026-07-28 ``tools/call`` by hand, as a client that can sample sends it."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": CONTEXT_STACK, "_meta": SAMPLING_META, **params},
    }
    headers = {
        **bearer(key),
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": TOOL,
    }
    with anyio.fail_after(10):
        response = await client.post("/mcp", json=body, headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
async def test_a_modern_client_writes_the_document_with_its_llm_in_two_logged_rounds(
    log: io.StringIO, stateless: bool
) -> None:
    app = create_app(Settings(mcp_stateless=stateless))
    client_llm = ClientLlm(said("The document.", model="client-model"))
    async with serving(app, Scope.WRITE) as rest:
        key = await issue_key(app, Scope.WRITE)
        mcp = mcp_over_http(app, key=key, mode=MODERN)
        with anyio.fail_after(10):
            async with Client(mcp.transport, mode=MODERN, sampling_handler=client_llm) as writer:
                result = await writer.call_tool(TOOL, CONTEXT_STACK)
        scraped = (await rest.get("/metrics")).text

    assert result.structured_content is not None
    assert result.structured_content["document"] == "The document."
    assert (result.structured_content["route"], result.structured_content["model"]) == (
        "client",
        "client-model",
    )
    asked, answered = tool_calls(log)
    assert (asked["mcp_outcome"], asked["llm_route"]) == ("input_required", "client")
    assert "llm_model" not in asked
    assert (answered["mcp_outcome"], answered["llm_model"]) == ("ok", "client-model")
    assert 'ctxfy_mcp_requests_total{method="tools/call",name="' + TOOL in scraped
    assert f'name="{TOOL}",outcome="input_required",version="1.0.0"}} 1.0' in scraped
    assert f'name="{TOOL}",outcome="ok",version="1.0.0"}} 1.0' in scraped


async def test_a_retry_with_another_callers_request_state_is_refused(app: FastAPI) -> None:
    async with serving(app, Scope.WRITE) as client:
        owner, other = await issue_key(app, Scope.WRITE), await issue_key(app, Scope.WRITE)
        status, asked = await call_raw(client, owner)
        state = asked["result"]["requestState"]
        replayed, refused = await call_raw(client, other, inputResponses=ANSWER, requestState=state)
        retried, answered = await call_raw(client, owner, inputResponses=ANSWER, requestState=state)

    assert (status, asked["result"]["resultType"]) == (200, "input_required")
    assert replayed == 400
    assert "requestState" in refused["error"]["message"]
    assert retried == 200
    assert answered["result"]["structuredContent"]["document"] == "Raw."


async def test_request_state_sealed_by_one_worker_is_accepted_by_another_with_the_same_keys() -> (
    None
):
    settings = Settings(mcp_state_keys=STATE_KEYS)
    first, second = create_app(settings), create_app(settings)
    async with serving(first, None), serving(second, None):
        # One key store (the same file), as replicas share one database.
        key = await issue_key(first, Scope.WRITE)
        async with asgi_client(first) as one, asgi_client(second) as two:
            _, asked = await call_raw(one, key)
            state = asked["result"]["requestState"]
            status, answered = await call_raw(two, key, inputResponses=ANSWER, requestState=state)

    assert status == 200
    assert answered["result"]["structuredContent"]["document"] == "Raw."


async def test_without_shared_keys_another_worker_cannot_unseal_the_state() -> None:
    first, second = create_app(Settings()), create_app(Settings())
    async with serving(first, None), serving(second, None):
        key = await issue_key(first, Scope.WRITE)
        async with asgi_client(first) as one, asgi_client(second) as two:
            _, asked = await call_raw(one, key)
            state = asked["result"]["requestState"]
            status, _ = await call_raw(two, key, inputResponses=ANSWER, requestState=state)

    assert status == 400


async def test_a_modern_client_without_sampling_gets_the_servers_document() -> None:
    llm = ScriptedLlm()
    app = create_app(
        Settings(llm_base_url="https://llm.test/v1", llm_model="gpt-test"), server_llm=llm
    )
    async with serving(app, None):
        key = await issue_key(app, Scope.WRITE)
        with anyio.fail_after(10):
            async with mcp_over_http(app, key=key, mode=MODERN) as writer:
                result = await writer.call_tool(TOOL, CONTEXT_STACK)

    assert result.structured_content is not None
    assert result.structured_content["route"] == "server"
    assert len(llm.requests) == 1
