"""The concurrency bound: past ``CTXFY_MAX_CONCURRENT_REQUESTS`` in flight, 503 at once."""

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.http.overload import JSONRPC_OVERLOADED, OverloadMiddleware
from app.main import UNBOUNDED_PATHS, create_app
from app.settings import Settings
from domain.keys import Scope as KeyScope
from infrastructure.metrics import Metrics, Surface
from tests.api.harness import BASE_URL, serving, state_of
from tests.fakes import HeldLlm

pytestmark = pytest.mark.anyio

BOUND = 2
GENERATE = "/v1/prompts/context_stack/generate"
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
AT_ONCE = 2.0  # seconds: a refusal does not wait for anything


@pytest.fixture
def held() -> HeldLlm:
    return HeldLlm()


@pytest.fixture
def app(held: HeldLlm) -> FastAPI:
    """A worker that takes two requests at once, whose server LLM holds every call."""
    settings = Settings(
        llm_base_url="https://llm.test/v1",
        llm_model="gpt-test-2026",
        max_concurrent_requests=BOUND,
    )
    return create_app(settings, server_llm=held)


@pytest.fixture
async def writer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, KeyScope.WRITE) as client:
        yield client


def refusals(metrics: Metrics, surface: Surface) -> float:
    value = metrics.registry.get_sample_value("ctxfy_overload_rejected_total", {"surface": surface})
    return value or 0.0


def access_lines(log: io.StringIO, path: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line]
    return [line for line in lines if line["event"] == "request" and line["path"] == path]


async def test_at_the_bound_requests_are_refused_at_once_and_pass_again_once_slots_free(
    app: FastAPI, writer: httpx.AsyncClient, held: HeldLlm, log: io.StringIO
) -> None:
    metrics = state_of(app).metrics
    generated: list[httpx.Response] = []

    async def generate() -> None:
        generated.append(await writer.post(GENERATE, json=CONTEXT_STACK))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for _ in range(BOUND):
                group.start_soon(generate)
            await held.until(lambda: held.held == BOUND)

            with anyio.fail_after(AT_ONCE):
                refused = await writer.get("/v1/prompts")
                refused_mcp = await writer.post("/mcp", json=PING, headers=MCP_HEADERS)
                stream = await writer.get("/mcp", headers={"Accept": "text/event-stream"})
                probes = [await writer.get(path) for path in UNBOUNDED_PATHS]
            scraped = probes[-1].text
            held.release()
        after = await writer.get("/v1/prompts")

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "overloaded",
        "message": "The server is at capacity; try again shortly.",
        "details": [],
        "request_id": refused.headers["x-request-id"],
    }
    for answer in (refused_mcp, stream):
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["code"] == JSONRPC_OVERLOADED
    assert [probe.status_code for probe in probes] == [200] * len(UNBOUNDED_PATHS)
    assert 'ctxfy_overload_rejected_total{surface="rest"} 1.0' in scraped
    assert (refusals(metrics, "rest"), refusals(metrics, "mcp")) == (1, 2)
    assert [response.status_code for response in generated] == [200] * BOUND
    assert after.status_code == 200
    assert held.answered == BOUND
    (refused_line,) = [line for line in access_lines(log, "/v1/prompts") if line["status"] == 503]
    assert refused_line["refused"] == "overloaded"


async def test_below_the_bound_nothing_is_refused(
    app: FastAPI, writer: httpx.AsyncClient, held: HeldLlm
) -> None:
    held.release()
    with anyio.fail_after(10):
        answers = [await writer.get("/v1/prompts") for _ in range(BOUND * 3)]

    assert {answer.status_code for answer in answers} == {200}
    assert refusals(state_of(app).metrics, "rest") == 0


class Gates:
    """An inner app whose every request waits at a gate of its path until the test opens it."""

    def __init__(self) -> None:
        self.arrived: dict[str, anyio.Event] = {}
        self.gates: dict[str, anyio.Event] = {}

    def gate(self, path: str) -> anyio.Event:
        self.arrived.setdefault(path, anyio.Event())
        return self.gates.setdefault(path, anyio.Event())

    async def reached(self, path: str) -> None:
        """Return once a request for ``path`` is at its gate."""
        self.gate(path)
        await self.arrived[path].wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        gate = self.gate(path)
        self.arrived[path].set()
        if path == "/boom":
            raise RuntimeError("the inner app failed")
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def bounded(inner: Gates, counted: list[Surface]) -> OverloadMiddleware:
    return OverloadMiddleware(inner, limit=1, on_refusal=counted.append, exempt=("/health/live",))


async def test_an_open_mcp_event_stream_holds_no_slot_but_is_refused_at_the_bound() -> None:
    inner, counted = Gates(), list[Surface]()
    middleware = bounded(inner, counted)
    transport = httpx.ASGITransport(middleware)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(client.get, "/mcp")  # the standalone event stream, held open
                await inner.reached("/mcp")
                inner.gate("/v1/work").set()
                passed = await client.get("/v1/work")  # the one slot is still free

                group.start_soon(client.get, "/v1/held")  # now the slot is taken
                await inner.reached("/v1/held")
                second_stream = await client.get("/mcp/")
                inner.gate("/health/live").set()
                probe = await client.get("/health/live")

                inner.gate("/mcp").set()
                inner.gate("/v1/held").set()

    assert passed.status_code == 200
    assert second_stream.status_code == 503
    assert second_stream.json()["error"]["code"] == JSONRPC_OVERLOADED
    assert probe.status_code == 200
    assert counted == ["mcp"]
    assert middleware.in_flight == 0


async def test_a_failing_request_gives_its_slot_back() -> None:
    inner, counted = Gates(), list[Surface]()
    middleware = bounded(inner, counted)
    transport = httpx.ASGITransport(middleware, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        with anyio.fail_after(10):
            failed = await client.get("/boom")
            inner.gate("/v1/work").set()
            passed = await client.get("/v1/work")

    assert failed.status_code == 500
    assert passed.status_code == 200
    assert (counted, middleware.in_flight) == ([], 0)


def test_the_bound_must_admit_at_least_one_request() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OverloadMiddleware(Gates(), limit=0, on_refusal=lambda _: None)
