"""Rate limits per key through the real app: REST and both MCP eras, buckets, headers,
counters, ``off``, and a rate-limit store that fails open or closed.

Limits are a few per day, so no test runs across a window's end and every count is exact.
"""

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Route

from app.http.jsonrpc_guard import JSONRPC_CALL, check
from app.http.rate_limit import RATE_LIMIT_UNAVAILABLE, RATE_LIMITED, bucket_of
from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from domain.rate_limits import Bucket
from tests.api.harness import bearer, issue_key, serving, state_of
from tests.api.test_auth_matrix import PARAMETER, declared_scopes
from tests.api.test_auth_mcp_matrix import admits, components
from tests.e2e.server import free_port
from tests.fakes import ScriptedLlm
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio

SERVER_LLM: dict[str, Any] = {"llm_base_url": "https://llm.test/v1", "llm_model": "gpt-test"}
GENERATE = "/v1/prompts/context_stack/generate"
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
NEW_KEY = {"user_id": "made-by", "scope": "read"}
MODERN = "2026-07-28"
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def limited_app(llm: ScriptedLlm | None = None, **settings: Any) -> FastAPI:
    """An app with a faked server-side LLM and the given settings (stateless MCP)."""
    return create_app(
        Settings(**SERVER_LLM, mcp_stateless=True, **settings), server_llm=llm or ScriptedLlm()
    )


def refused_in(app: FastAPI, bucket: Bucket) -> float:
    """``ctxfy_rate_limited_total{scope=bucket}`` as ``/metrics`` reports it."""
    registry = state_of(app).metrics.registry
    return registry.get_sample_value("ctxfy_rate_limited_total", {"scope": bucket.value}) or 0.0


def store_errors(app: FastAPI) -> float:
    registry = state_of(app).metrics.registry
    return registry.get_sample_value("ctxfy_rate_limit_errors_total") or 0.0


def rate_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in RATE_HEADERS if name in response.headers}


def assert_rest_429(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"] == "rate_limited"
    assert f"({limit} per window)" in body["message"]
    assert body["details"] == []
    assert body["request_id"] == response.headers["x-request-id"]
    assert int(response.headers["retry-after"]) >= 1
    assert rate_headers(response) == {
        "ratelimit-limit": str(limit),
        "ratelimit-remaining": "0",
        "ratelimit-reset": response.headers["ratelimit-reset"],
    }
    assert int(response.headers["ratelimit-reset"]) >= 0


def tool_call(message_id: int, *, modern: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """A ``tools/call`` of ``generate_context_stack`` as each era's client sends it."""
    params: dict[str, Any] = {"name": "generate_context_stack", "arguments": CONTEXT_STACK}
    headers = {**ACCEPT, "mcp-protocol-version": "2025-06-18"}
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers = {
            **ACCEPT,
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": "generate_context_stack",
        }
    body = {"jsonrpc": "2.0", "id": message_id, "method": "tools/call", "params": params}
    return body, headers


@pytest.fixture
def read_limited() -> FastAPI:
    return limited_app(rate_limit_read="2/day")


@pytest.fixture
async def reader(read_limited: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(read_limited) as client:
        yield client


async def test_past_the_read_limit_a_rest_read_is_429_with_when_to_retry(
    read_limited: FastAPI, reader: httpx.AsyncClient
) -> None:
    with anyio.fail_after(10):
        allowed = [await reader.get("/v1/prompts") for _ in range(2)]
        refused = await reader.get("/v1/prompts/context_stack")

    assert [r.status_code for r in allowed] == [200, 200]
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["1", "0"]
    assert all(r.headers["ratelimit-limit"] == "2" for r in allowed)
    assert all("retry-after" not in r.headers for r in allowed)
    assert_rest_429(refused, limit=2)
    assert refused_in(read_limited, Bucket.READ) == 1


async def test_past_the_write_limit_key_management_is_429() -> None:
    app = limited_app(rate_limit_write="2/day")
    async with serving(app, Scope.ADMIN) as admin:
        with anyio.fail_after(10):
            created = [await admin.post("/v1/keys", json=NEW_KEY) for _ in range(2)]
            refused = await admin.post("/v1/keys", json=NEW_KEY)
            listed = await admin.get("/v1/keys")

    assert [r.status_code for r in created] == [201, 201]
    assert_rest_429(refused, limit=2)
    assert listed.status_code == 200, "listing keys is a read"
    assert (refused_in(app, Bucket.WRITE), refused_in(app, Bucket.READ)) == (1, 0)


async def test_past_the_generate_limit_rest_generation_is_429_and_the_llm_is_not_asked() -> None:
    llm = ScriptedLlm()
    app = limited_app(llm, rate_limit_generate="1/day")
    async with serving(app, Scope.WRITE) as writer:
        with anyio.fail_after(10):
            first = await writer.post(GENERATE, json=CONTEXT_STACK)
            second = await writer.post(GENERATE, json=CONTEXT_STACK)
            preview = await writer.post("/v1/prompts/context_stack/preview", json=CONTEXT_STACK)

    assert first.status_code == 200
    assert_rest_429(second, limit=1)
    assert len(llm.requests) == 1
    assert preview.status_code == 200, "a preview spends no tokens: it is a read"
    assert refused_in(app, Bucket.GENERATE) == 1


async def test_each_request_counts_against_exactly_one_bucket() -> None:
    app = limited_app(
        rate_limit_read="1/day", rate_limit_write="1/day", rate_limit_generate="1/day"
    )
    async with serving(app, Scope.ADMIN) as admin:
        with anyio.fail_after(10):
            first = [
                await admin.post(GENERATE, json=CONTEXT_STACK),
                await admin.get("/v1/prompts"),
                await admin.post("/v1/keys", json=NEW_KEY),
            ]
            again = [
                await admin.post(GENERATE, json=CONTEXT_STACK),
                await admin.get("/v1/prompts"),
                await admin.post("/v1/keys", json=NEW_KEY),
            ]

    assert [r.status_code for r in first] == [200, 200, 201]
    assert [r.status_code for r in again] == [429, 429, 429]


@pytest.mark.parametrize("modern", [False, True], ids=["legacy", MODERN])
async def test_past_the_generate_limit_an_mcp_tool_call_is_a_json_rpc_429_before_mcp_runs(
    log: io.StringIO, modern: bool
) -> None:
    llm = ScriptedLlm()
    app = limited_app(llm, rate_limit_generate="1/day")
    async with serving(app, Scope.WRITE) as client:
        with anyio.fail_after(10):
            body, headers = tool_call(1, modern=modern)
            first = await client.post("/mcp", json=body, headers=headers)
            body, headers = tool_call(2, modern=modern)
            refused = await client.post("/mcp", json=body, headers=headers)
        scraped = (await client.get("/metrics")).text

    assert first.status_code == 200
    assert first.json()["result"]["isError"] is False
    assert refused.status_code == 429
    assert refused.json() == {
        "jsonrpc": "2.0",
        "id": 2,
        "error": {"code": RATE_LIMITED, "message": refused.json()["error"]["message"]},
    }
    assert "Too many generate requests" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert rate_headers(refused)["ratelimit-remaining"] == "0"
    # The MCP app never saw the second call: one LLM request, one tools/call counted.
    assert len(llm.requests) == 1
    calls = [
        line
        for line in scraped.splitlines()
        if line.startswith('ctxfy_mcp_requests_total{method="tools/call"')
    ]
    assert calls == [
        'ctxfy_mcp_requests_total{method="tools/call",name="generate_context_stack",'
        'outcome="ok",version="1.0.0"} 1.0'
    ]
    assert 'ctxfy_rate_limited_total{scope="generate"} 1.0' in scraped
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    (access,) = [x for x in lines if x["event"] == "request" and x.get("status") == 429]
    assert (access["rate_limit"], access["mcp_error"]) == ("generate", "rate_limited")


async def test_past_the_read_limit_every_other_mcp_message_is_a_json_rpc_429() -> None:
    async with serving(limited_app(rate_limit_read="2/day")) as client:
        with anyio.fail_after(10):
            opened = await client.post("/mcp", json=initialize(), headers=ACCEPT)
            listed = await client.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": "list-1", "method": "tools/list"},
                headers={**ACCEPT, "mcp-protocol-version": "2025-06-18"},
            )
            refused = await client.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": "list-2", "method": "tools/list"},
                headers={**ACCEPT, "mcp-protocol-version": "2025-06-18"},
            )

    assert [opened.status_code, listed.status_code] == [200, 200]
    assert listed.headers["ratelimit-remaining"] == "0"
    assert refused.status_code == 429
    assert refused.json()["id"] == "list-2"
    assert refused.json()["error"]["code"] == RATE_LIMITED
    assert "Too many read requests" in refused.json()["error"]["message"]


async def test_one_keys_limit_leaves_another_keys_alone(
    read_limited: FastAPI, reader: httpx.AsyncClient
) -> None:
    other = bearer(await issue_key(read_limited))
    with anyio.fail_after(10):
        for _ in range(3):
            await reader.get("/v1/prompts")
        spent = await reader.get("/v1/prompts")
        fresh = await reader.get("/v1/prompts", headers=other)

    assert spent.status_code == 429
    assert fresh.status_code == 200
    assert fresh.headers["ratelimit-remaining"] == "1"


async def test_public_paths_and_refused_credentials_are_never_limited(
    reader: httpx.AsyncClient,
) -> None:
    with anyio.fail_after(10):
        public = [await reader.get("/health/live") for _ in range(4)]
        anonymous = [
            await reader.get("/v1/prompts", headers={"Authorization": ""}) for _ in range(4)
        ]
        counted_yet = await reader.get("/v1/prompts")

    assert [r.status_code for r in public] == [200] * 4
    assert [r.status_code for r in anonymous] == [401] * 4
    assert not any(rate_headers(r) for r in [*public, *anonymous])
    assert counted_yet.headers["ratelimit-remaining"] == "1", "nothing above spent the key's reads"


async def test_a_bucket_set_off_is_not_limited_and_sends_no_rate_limit_headers() -> None:
    app = limited_app(rate_limit_read="off", rate_limit_generate="1/day")
    async with serving(app, Scope.WRITE) as client:
        with anyio.fail_after(10):
            reads = [await client.get("/v1/prompts") for _ in range(5)]
            generated = await client.post(GENERATE, json=CONTEXT_STACK)

    assert [r.status_code for r in reads] == [200] * 5
    assert not any(rate_headers(r) for r in reads)
    assert generated.headers["ratelimit-limit"] == "1", "the other buckets still count"


def closed_port_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_a_store_that_is_down_fails_open_logged_once_at_warning_and_counted(
    log: io.StringIO,
) -> None:
    app = limited_app(redis_url=closed_port_redis(), rate_limit_fail_open=True)
    async with serving(app, Scope.WRITE) as client:
        with anyio.fail_after(10):
            answers = [
                await client.get("/v1/prompts"),
                await client.post(GENERATE, json=CONTEXT_STACK),
                await client.post("/mcp", json=initialize(), headers=ACCEPT),
            ]

    assert [r.status_code for r in answers] == [200, 200, 200]
    assert not any(rate_headers(r) for r in answers)
    assert store_errors(app) == 3
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    (warning,) = [x for x in lines if x["event"] == "rate_limit_store_unavailable"]
    assert (warning["level"], warning["fail_open"], warning["error"]) == (
        "warning",
        True,
        "ConnectionError",
    )
    assert "exception" not in warning
    assert not [x for x in lines if x["level"] in ("error", "critical")]


async def test_a_store_that_is_down_fails_closed_with_503_and_retry_after_never_500() -> None:
    app = limited_app(redis_url=closed_port_redis(), rate_limit_fail_open=False)
    async with serving(app, Scope.WRITE) as client:
        with anyio.fail_after(10):
            rest = await client.get("/v1/prompts")
            body, headers = tool_call(5, modern=True)
            mcp = await client.post("/mcp", json=body, headers=headers)
            health = await client.get("/health/live")

    assert rest.status_code == 503
    assert rest.json()["error"] == "rate_limit_unavailable"
    assert rest.headers["retry-after"] == "5"
    assert mcp.status_code == 503
    assert mcp.json()["id"] == 5
    assert mcp.json()["error"]["code"] == RATE_LIMIT_UNAVAILABLE
    assert mcp.headers["retry-after"] == "5"
    assert health.status_code == 200, "public paths need no rate-limit store"


def _scope_for(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": PARAMETER.sub("x", path)}


async def test_every_rest_route_counts_against_the_bucket_its_scope_implies() -> None:
    """Generated from the app's routes: what needs `write` spends LLM tokens (D4)."""
    app = limited_app()
    checked = 0
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        scopes = declared_scopes(route)
        if not isinstance(original, Route) or not scopes:
            continue  # public, or a mount the MCP test below covers
        for method in sorted(route.methods or ()):
            if Scope.WRITE in scopes:
                expected = Bucket.GENERATE
            elif method in ("GET", "HEAD") or scopes == {Scope.READ}:
                expected = Bucket.READ
            else:
                expected = Bucket.WRITE
            found = bucket_of(_scope_for(method, str(route.path)), mcp=False)
            assert found is expected, f"{method} {route.path}: {found} ≠ {expected}"
            checked += 1
    assert checked > 10


async def test_every_mcp_tool_that_needs_write_counts_against_generate_and_no_other() -> None:
    app = limited_app()
    offered = await components(state_of(app).mcp)
    assert offered.tools
    for tool in offered.tools:
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool.name}}
        ).encode()
        scope = {"type": "http", "method": "POST", "path": "/mcp", JSONRPC_CALL: check(body)}
        expected = Bucket.READ if await admits(tool, Scope.READ) else Bucket.GENERATE
        assert bucket_of(scope, mcp=True) is expected, tool.name
