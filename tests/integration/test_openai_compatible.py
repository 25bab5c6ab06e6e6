"""``OpenAICompatibleLlm`` against a respx-mocked Chat Completions endpoint, time driven."""

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest

from domain.llm import (
    LlmBadResponse,
    LlmMessage,
    LlmNotConfigured,
    LlmRateLimited,
    LlmRejected,
    LlmRequest,
    LlmTimeout,
    LlmUnavailable,
    ModelPreferences,
)
from infrastructure.llm.openai_compatible import OpenAICompatibleLlm
from tests.integration.llm_world import (
    ASK,
    BASE,
    KEY,
    World,
    built,
    failure,
    ok,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with built() as world:
        yield world


async def test_a_completion_carries_text_model_provider_tokens_and_latency(world: World) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        world.clock.advance(0.25)
        return ok()

    world.route.side_effect = answer
    completion = await world.llm.complete(ASK)
    assert completion.text == "A summary."
    assert completion.model == "gpt-test-2026"
    assert completion.provider == "openai-compatible"
    assert (completion.input_tokens, completion.output_tokens) == (12, 3)
    assert completion.latency_ms == pytest.approx(250.0)


async def test_the_body_puts_the_system_prompt_first_and_uses_the_configured_model(
    world: World,
) -> None:
    world.route.return_value = ok()
    request = LlmRequest(
        messages=(
            LlmMessage("user", "Q1"),
            LlmMessage("assistant", "A1"),
            LlmMessage("user", "Q2"),
        ),
        system_prompt="Be brief.",
        max_tokens=100,
        temperature=0.2,
        model_preferences=ModelPreferences(hints=("gpt-small",), cost_priority=1.0),
    )
    await world.llm.complete(request)
    assert json.loads(world.requests()[0].content) == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
    }


async def test_without_hint_or_temperature_the_configured_model_is_asked(world: World) -> None:
    world.route.return_value = ok()
    await world.llm.complete(ASK)
    body = json.loads(world.requests()[0].content)
    assert body == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "Summarise this."}],
        "max_tokens": 64,
    }


async def test_only_the_configured_key_is_sent_upstream(world: World) -> None:
    world.route.return_value = ok()
    await world.llm.complete(ASK)
    headers = world.requests()[0].headers
    assert headers.get_list("authorization") == [f"Bearer {KEY}"]
    assert "x-api-key" not in headers


async def test_no_authorization_header_is_sent_when_no_key_is_configured() -> None:
    async with built(api_key=None) as world:
        world.route.return_value = ok()
        await world.llm.complete(ASK)
        assert "authorization" not in world.requests()[0].headers


async def test_missing_token_usage_leaves_counts_unknown(world: World) -> None:
    world.route.return_value = httpx.Response(
        200, json={"choices": [{"message": {"content": "x"}}]}
    )
    completion = await world.llm.complete(ASK)
    assert (completion.input_tokens, completion.output_tokens) == (None, None)
    assert completion.model == "gpt-test"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_a_client_error_is_rejected_without_retrying(world: World, status: int) -> None:
    world.route.return_value = httpx.Response(status, json={"error": {"message": f"bad {KEY}"}})
    error = await failure(world)
    assert isinstance(error, LlmRejected)
    assert error.status == status
    assert world.route.call_count == 1
    assert world.sleeps == []


async def test_429_is_retried_after_the_seconds_retry_after_asks_for(world: World) -> None:
    world.route.side_effect = [httpx.Response(429, headers={"Retry-After": "3"}), ok()]
    completion = await world.llm.complete(ASK)
    assert completion.text == "A summary."
    assert world.sleeps == [3.0]


async def test_retry_after_may_be_an_http_date(world: World) -> None:
    when = format_datetime(world.clock.wall + timedelta(seconds=7), usegmt=True)
    world.route.side_effect = [httpx.Response(429, headers={"Retry-After": when}), ok()]
    await world.llm.complete(ASK)
    assert world.sleeps == [7.0]


async def test_a_long_retry_after_is_capped(world: World) -> None:
    world.route.side_effect = [httpx.Response(429, headers={"Retry-After": "3600"}), ok()]
    await world.llm.complete(ASK)
    assert world.sleeps == [30.0]


async def test_429_without_retry_after_backs_off_with_jitter(world: World) -> None:
    world.route.side_effect = [httpx.Response(429), ok()]
    await world.llm.complete(ASK)
    assert world.jitter_ranges == [(0.0, 0.5)]
    assert world.sleeps == [0.5]


async def test_429_until_retries_run_out_is_rate_limited_with_retry_after(world: World) -> None:
    world.route.return_value = httpx.Response(429, headers={"Retry-After": "2"})
    error = await failure(world)
    assert isinstance(error, LlmRateLimited)
    assert error.retry_after == 2.0
    assert world.route.call_count == 3
    assert world.sleeps == [2.0, 2.0]


async def test_a_server_error_is_retried_then_succeeds(world: World) -> None:
    world.route.side_effect = [httpx.Response(500), httpx.Response(503), ok()]
    assert (await world.llm.complete(ASK)).text == "A summary."
    assert world.sleeps == [0.5, 1.0]


async def test_server_errors_until_retries_run_out_are_unavailable(world: World) -> None:
    world.route.return_value = httpx.Response(502)
    error = await failure(world)
    assert isinstance(error, LlmUnavailable)
    assert "502" in str(error)
    assert world.route.call_count == 3


async def test_backoff_is_full_jitter_doubling_up_to_a_cap() -> None:
    async with built(max_retries=6) as world:
        world.route.return_value = httpx.Response(500)
        await failure(world)
        assert world.jitter_ranges == [(0.0, d) for d in (0.5, 1.0, 2.0, 4.0, 8.0, 8.0)]


async def test_a_read_timeout_is_a_timeout_and_not_retried(world: World) -> None:
    world.route.side_effect = httpx.ReadTimeout("slow")
    error = await failure(world)
    assert isinstance(error, LlmTimeout)
    assert isinstance(error.__cause__, httpx.ReadTimeout)
    assert world.route.call_count == 1


@pytest.mark.parametrize("cause", [httpx.ConnectError, httpx.ConnectTimeout])
async def test_connection_failures_are_retried_then_unavailable(
    world: World, cause: Callable[[str], httpx.HTTPError]
) -> None:
    world.route.side_effect = cause("refused")
    error = await failure(world)
    assert isinstance(error, LlmUnavailable)
    assert isinstance(error.__cause__, httpx.TransportError)
    assert world.route.call_count == 3
    assert world.sleeps == [0.5, 1.0]


async def test_a_connection_failure_then_success_succeeds(world: World) -> None:
    world.route.side_effect = [httpx.ConnectError("refused"), ok()]
    assert (await world.llm.complete(ASK)).text == "A summary."


async def test_a_dropped_connection_is_unavailable(world: World) -> None:
    world.route.side_effect = httpx.RemoteProtocolError("peer closed")
    assert isinstance(await failure(world), LlmUnavailable)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json={"id": "x"}),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),
        httpx.Response(204),
    ],
)
async def test_an_answer_without_a_completion_is_a_bad_response(
    world: World, response: httpx.Response
) -> None:
    world.route.return_value = response
    assert isinstance(await failure(world), LlmBadResponse)
    assert world.route.call_count == 1


async def test_over_the_concurrency_cap_a_call_waits_for_a_free_slot() -> None:
    async with built(max_concurrency=1) as world:
        arrived: list[httpx.Request] = []
        entered, release = anyio.Event(), anyio.Event()

        async def first_waits(request: httpx.Request) -> httpx.Response:
            arrived.append(request)  # respx counts a call only once it is answered
            if len(arrived) == 1:
                entered.set()
                await release.wait()
            return ok()

        world.route.side_effect = first_waits
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(world.llm.complete, ASK)
                await entered.wait()
                tg.start_soon(world.llm.complete, ASK)
                await anyio.wait_all_tasks_blocked()
                assert len(arrived) == 1
                release.set()
        assert len(arrived) == 2


async def test_a_closed_client_is_unavailable(world: World) -> None:
    await world.llm.close()
    assert isinstance(await failure(world), LlmUnavailable)
    assert world.route.call_count == 0


@pytest.mark.parametrize(("base_url", "model"), [("", "m"), (BASE, " ")])
def test_an_adapter_without_url_or_model_is_not_configured(base_url: str, model: str) -> None:
    with pytest.raises(LlmNotConfigured):
        OpenAICompatibleLlm(base_url, None, model)


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": -1},
        {"max_concurrency": 0},
        {"connect_timeout": 10.0},
        {"connect_timeout": 0.0},
        {"read_timeout": 0.0},
    ],
)
def test_an_adapter_refuses_impossible_limits(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"max_|timeouts"):
        OpenAICompatibleLlm(BASE, None, "m", **options)


async def test_an_unreadable_retry_after_falls_back_to_backoff(world: World) -> None:
    world.route.side_effect = [httpx.Response(429, headers={"Retry-After": "soon"}), ok()]
    await world.llm.complete(ASK)
    assert world.sleeps == [0.5]
