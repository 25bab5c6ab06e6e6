"""``MiddlewareLayer``: several FastMCP middlewares as one layer of the server's chain, each
hook running only the parts that override it, in their order, through a real FastMCP server."""

from typing import Any

import pytest
from fastapi import FastAPI
from fastmcp import Client, FastMCP
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from app.mcp.middleware import MiddlewareLayer
from tests.api.harness import state_of

pytestmark = pytest.mark.anyio


class Recording(Middleware):
    """Writes ``<name>:<hook>`` before and ``/<name>:<hook>`` after passing the call on."""

    def __init__(self, name: str, trace: list[str]) -> None:
        self.name = name
        self.trace = trace

    async def _around(self, hook: str, context: Any, call_next: CallNext[Any, Any]) -> Any:
        self.trace.append(f"{self.name}:{hook}")
        result = await call_next(context)
        self.trace.append(f"/{self.name}:{hook}")
        return result


class Requests(Recording):
    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        return await self._around("request", context, call_next)


class Prompts(Recording):
    async def on_get_prompt(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        return await self._around("get_prompt", context, call_next)


class Both(Requests, Prompts):
    pass


class Shouting(Middleware):
    """Changes what the inner ones return: the layer must hand results back out."""

    async def on_get_prompt(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        result = await call_next(context)
        result.messages[0].content.text = result.messages[0].content.text.upper()
        return result


def server(*middleware: Middleware) -> FastMCP:
    mcp = FastMCP("t", middleware=list(middleware))

    @mcp.prompt
    async def greet(who: str) -> str:
        return f"hello {who}"

    return mcp


async def rendered(mcp: FastMCP) -> str:
    async with Client(mcp) as client:
        result = await client.get_prompt("greet", {"who": "ada"})
    text: str = result.messages[0].content.text
    return text


def parts(trace: list[str]) -> list[Middleware]:
    return [Both("a", trace), Prompts("b", trace), Requests("c", trace)]


def prompts_get(trace: list[str]) -> list[str]:
    """The part of ``trace`` the ``prompts/get`` request wrote (after the handshake's)."""
    start = trace.index("a:get_prompt") - 2
    return trace[start:]


async def test_each_hook_runs_the_parts_that_override_it_in_their_order() -> None:
    layered: list[str] = []
    separate: list[str] = []

    assert await rendered(server(MiddlewareLayer(*parts(layered)))) == "hello ada"
    assert await rendered(server(*parts(separate))) == "hello ada"

    # Within one layer the request hooks (a, c) wrap the method hooks (a, b), as FastMCP
    # nests one middleware's hooks; each kind keeps the parts' order.
    assert prompts_get(layered) == [
        "a:request",
        "c:request",
        "a:get_prompt",
        "b:get_prompt",
        "/b:get_prompt",
        "/a:get_prompt",
        "/c:request",
        "/a:request",
    ]
    # The same hooks ran as with three layers; only their nesting across parts differs.
    assert sorted(layered) == sorted(separate)


async def test_a_part_sees_what_the_inner_parts_return_and_its_own_result_is_returned() -> None:
    trace: list[str] = []

    text = await rendered(server(MiddlewareLayer(Shouting(), Prompts("inner", trace))))

    assert text == "HELLO ADA"
    assert "inner:get_prompt" in trace


async def test_hooks_no_part_overrides_stay_the_pass_through_ones() -> None:
    layer = MiddlewareLayer(Prompts("p", []))

    assert type(layer).on_request is Middleware.on_request
    assert "on_request" not in vars(layer)
    assert "on_get_prompt" in vars(layer)


def test_the_server_has_one_fastmcp_layer_holding_every_ctxfy_middleware(app: FastAPI) -> None:
    (layer,) = state_of(app).mcp.middleware

    assert isinstance(layer, MiddlewareLayer)
    assert [type(part).__name__ for part in layer.parts] == [
        "McpObservabilityMiddleware",
        "CatalogNotifier",
        "PromptArgumentsMiddleware",
    ]
