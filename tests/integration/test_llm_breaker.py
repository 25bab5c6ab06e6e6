"""The LLM adapter's circuit breaker: open, cool down, one half-open trial, close."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from domain.llm import (
    LlmCircuitOpen,
    LlmRateLimited,
    LlmRejected,
    LlmUnavailable,
)
from infrastructure.llm.breaker import BreakerState, CircuitBreaker
from tests.integration.llm_world import (
    ASK,
    COOLDOWN,
    THRESHOLD,
    Clock,
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


def test_a_failure_admitted_before_the_breaker_opened_does_not_extend_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=10, clock=lambda: clock.mono)

    def fail_inside(then: Callable[[], None]) -> None:
        with breaker.guard():
            then()
            raise LlmUnavailable("down")

    def another_call_fails_and_time_passes() -> None:
        with pytest.raises(LlmUnavailable):
            fail_inside(lambda: None)
        clock.advance(4)

    with pytest.raises(LlmUnavailable):
        fail_inside(another_call_fails_and_time_passes)
    with pytest.raises(LlmCircuitOpen) as refused:
        breaker.check()
    assert refused.value.retry_after == pytest.approx(6.0)


@pytest.mark.parametrize(
    "options",
    [{"failure_threshold": 0}, {"cooldown_seconds": 0.0}],
)
def test_a_breaker_needs_a_threshold_and_a_cooldown(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        CircuitBreaker(**options)
