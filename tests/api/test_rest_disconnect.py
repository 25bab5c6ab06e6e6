"""A REST generation whose client disconnects is cancelled, and its access line says so."""

import io
import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from starlette.types import Message

from app.http.disconnect import unless_disconnected
from app.http.errors import ClientDisconnected
from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from domain.llm import LlmTimeout
from tests.api.harness import serving, state_of
from tests.fakes import HeldLlm

pytestmark = pytest.mark.anyio

MODEL = "gpt-test-2026"
GENERATE = "/v1/prompts/context_stack/generate"
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}


@pytest.fixture
def held() -> HeldLlm:
    return HeldLlm()


@pytest.fixture
def app(held: HeldLlm) -> FastAPI:
    return create_app(
        Settings(llm_base_url="https://llm.test/v1", llm_model=MODEL), server_llm=held
    )


def generate_scope(authorization: str, body: bytes) -> dict[str, Any]:
    """An ASGI scope of ``POST`` generate, as uvicorn builds one."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": GENERATE,
        "raw_path": GENERATE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", authorization.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def events(log: io.StringIO, matches: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line]
    return [line for line in lines if matches(line)]


async def test_a_client_that_disconnects_cancels_its_generation_which_is_logged_as_499(
    app: FastAPI, held: HeldLlm, log: io.StringIO
) -> None:
    body = json.dumps(CONTEXT_STACK).encode()
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    hung_up = anyio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async with serving(app, Scope.WRITE) as writer:
        scope = generate_scope(writer.headers["authorization"], body)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(app, scope, receive, send)
                await held.until(lambda: held.held == 1)
                hung_up.set()
        cancelled = state_of(app).metrics.registry.get_sample_value(
            "ctxfy_llm_requests_total",
            {"provider": "openai-compatible", "model": MODEL, "outcome": "cancelled"},
        )

    assert (held.cancelled, held.answered, held.held) == (1, 0, 0)
    (line,) = events(log, lambda e: e["event"] == "request" and e["path"] == GENERATE)
    assert line["status"] == 499
    assert (line["llm_route"], line["llm_error"]) == ("server", "client_disconnected")
    assert "llm_output_tokens" not in line
    (event,) = events(log, lambda e: e["event"] == "generation_cancelled")
    assert (event["prompt"], event["route"]) == ("context_stack", "server")
    assert cancelled == 1
    # Nothing reaches the departed client but the status its line is logged with.
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [499]


async def test_a_client_that_stays_gets_its_document() -> None:
    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def work() -> str:
        return "the document"

    with anyio.fail_after(5):
        assert await unless_disconnected(receive, work) == "the document"


async def test_a_failure_of_the_work_is_raised_as_itself_not_as_a_group() -> None:
    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def work() -> str:
        raise LlmTimeout("slow")

    with anyio.fail_after(5), pytest.raises(LlmTimeout):
        await unless_disconnected(receive, work)


async def test_a_disconnect_cancels_the_work_and_raises_client_disconnected() -> None:
    finished = False

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def work() -> str:
        nonlocal finished
        await anyio.sleep_forever()
        finished = True
        return "never"

    with anyio.fail_after(5), pytest.raises(ClientDisconnected):
        await unless_disconnected(receive, work)
    assert not finished
