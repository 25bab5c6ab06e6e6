"""``OpenAICompatibleLlm`` against a respx-mocked Chat Completions endpoint, time driven."""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest
import respx

from domain.llm import (
    LlmBadResponse,
    LlmCircuitOpen,
    LlmError,
    LlmMessage,
    LlmNotConfigured,
    LlmRateLimited,
    LlmRejected,
    LlmRequest,
    LlmTimeout,
    LlmUnavailable,
)
from infrastructure.llm.breaker import BreakerState, CircuitBreaker
from infrastructure.llm.openai_compatible import OpenAICompatibleLlm

pytestmark = pytest.mark.anyio
BASE = "https://llm.test/v1"
KEY = "sk-server-only-0123456789"
THRESHOLD = 3
COOLDOWN = 30.0
ASK = LlmRequest(messages=(LlmMessage("user", "Summarise this."),), max_tokens=64)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def ok(text: str = "A summary.", **extra: Any) -> httpx.Response:
    body = {
        "id": "chatcmpl-1",
        "model": "gpt-test-2026",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    return httpx.Response(200, json=body | extra)


@dataclass
class Clock:
    """Wall and monotonic time, moved only by the test."""

    wall: datetime = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    mono: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@dataclass
class World:
    llm: OpenAICompatibleLlm
    route: respx.Route
    clock: Clock
    breaker: CircuitBreaker
    sleeps: list[float] = field(default_factory=list)
    jitter_ranges: list[tuple[float, float]] = field(default_factory=list)

    def state(self) -> BreakerState:
        return self.breaker.state

    def requests(self) -> list[httpx.Request]:
        return [call.request for call in self.route.calls]


@asynccontextmanager
async def built(**options: Any) -> AsyncIterator[World]:
    router = respx.MockRouter(base_url=BASE, assert_all_called=False)
    route = router.post("/chat/completions")
    clock = Clock()
    breaker = CircuitBreaker(
        failure_threshold=THRESHOLD, cooldown_seconds=COOLDOWN, clock=lambda: clock.mono
    )
    sleeps: list[float] = []
    ranges: list[tuple[float, float]] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await anyio.lowlevel.checkpoint()

    def widest(low: float, high: float) -> float:
        ranges.append((low, high))
        return high

    settings: dict[str, Any] = {"api_key": KEY} | options
    llm = OpenAICompatibleLlm(
        BASE,
        model="gpt-test",
        breaker=breaker,
        transport=httpx.MockTransport(router.async_handler),
        now=lambda: clock.wall,
        monotonic=lambda: clock.mono,
        sleep=sleep,
        uniform=widest,
        **settings,
    )
    yield World(llm, route, clock, breaker, sleeps, ranges)
    await llm.close()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with built() as world:
        yield world


async def failure(world: World, request: LlmRequest = ASK) -> LlmError:
    with anyio.fail_after(5), pytest.raises(LlmError) as raised:
        await world.llm.complete(request)
    assert KEY not in str(raised.value)
    return raised.value


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


async def test_the_body_puts_the_system_prompt_first_and_uses_the_model_hint(world: World) -> None:
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
        model_hint="gpt-small",
    )
    await world.llm.complete(request)
    assert json.loads(world.requests()[0].content) == {
        "model": "gpt-small",
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


async def open_breaker(world: World) -> None:
    world.route.return_value = httpx.Response(500)
    for _ in range(THRESHOLD):
        assert isinstance(await failure(world), LlmUnavailable)


async def test_the_breaker_opens_after_consecutive_failures_and_sends_nothing() -> None:
    async with built(max_retries=0) as world:
        await open_breaker(world)
        world.clock.advance(COOLDOWN - 1)
        error = await failure(world)
        assert isinstance(error, LlmCircuitOpen)
        assert error.retry_after == pytest.approx(1.0)
        assert world.route.call_count == THRESHOLD


async def test_a_success_resets_the_consecutive_failure_count() -> None:
    async with built(max_retries=0) as world:
        down = httpx.Response(500)
        world.route.side_effect = [down] * (THRESHOLD - 1) + [ok()] + [down] * (THRESHOLD - 1)
        for _ in range(THRESHOLD - 1):
            await failure(world)
        await world.llm.complete(ASK)
        for _ in range(THRESHOLD - 1):
            await failure(world)
        assert world.state() is BreakerState.CLOSED


async def test_rejections_do_not_open_the_breaker() -> None:
    async with built(max_retries=0) as world:
        world.route.return_value = httpx.Response(400)
        for _ in range(THRESHOLD + 1):
            assert isinstance(await failure(world), LlmRejected)
        assert world.state() is BreakerState.CLOSED


async def test_after_the_cooldown_exactly_one_trial_goes_through_and_success_closes() -> None:
    async with built(max_retries=0) as world:
        await open_breaker(world)
        world.clock.advance(COOLDOWN)
        assert world.state() is BreakerState.HALF_OPEN
        entered, release = anyio.Event(), anyio.Event()

        async def slow_ok(request: httpx.Request) -> httpx.Response:
            entered.set()
            await release.wait()
            return ok()

        world.route.side_effect = slow_ok
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(world.llm.complete, ASK)
                await entered.wait()
                assert isinstance(await failure(world), LlmCircuitOpen)
                release.set()
        assert world.route.call_count == THRESHOLD + 1
        assert world.state() is BreakerState.CLOSED
        world.route.side_effect = None
        world.route.return_value = ok()
        assert (await world.llm.complete(ASK)).text == "A summary."


async def test_a_failed_trial_opens_the_breaker_for_another_cooldown() -> None:
    async with built(max_retries=0) as world:
        await open_breaker(world)
        world.clock.advance(COOLDOWN)
        world.route.side_effect = httpx.ConnectError("still down")
        assert isinstance(await failure(world), LlmUnavailable)
        error = await failure(world)
        assert isinstance(error, LlmCircuitOpen)
        assert error.retry_after == pytest.approx(COOLDOWN)
        assert world.route.call_count == THRESHOLD + 1


async def test_a_rate_limited_trial_leaves_the_breaker_half_open() -> None:
    async with built(max_retries=0) as world:
        await open_breaker(world)
        world.clock.advance(COOLDOWN)
        world.route.return_value = httpx.Response(429)
        assert isinstance(await failure(world), LlmRateLimited)
        assert world.state() is BreakerState.HALF_OPEN
        world.route.return_value = ok()
        await world.llm.complete(ASK)
        assert world.state() is BreakerState.CLOSED


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
