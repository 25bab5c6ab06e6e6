"""The ``total_timeout`` budget of one ``OpenAICompatibleLlm.complete`` call.

Retry waits are checked against the driven clock; the budget itself is enforced with real
``anyio.fail_after`` timers, so the tests that need it to expire use a short real budget.
"""

from collections.abc import Awaitable, Callable

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup

from domain.llm import (
    LlmCircuitOpen,
    LlmCompletion,
    LlmError,
    LlmRateLimited,
    LlmTimeout,
    LlmUnavailable,
)
from infrastructure.llm.breaker import BreakerState
from infrastructure.llm.openai_compatible import OpenAICompatibleLlm
from tests.integration.llm_world import ASK, BASE, THRESHOLD, World, built, failure, ok

pytestmark = pytest.mark.anyio

SHORT = 0.2  # a real budget, for the tests that let it run out


def never_answers(
    arrived: list[httpx.Request],
) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """An upstream side effect that records each request and then hangs."""

    async def hang(request: httpx.Request) -> httpx.Response:
        arrived.append(request)  # respx counts a call only once it is answered
        await anyio.Event().wait()
        raise AssertionError("unreachable")

    return hang


async def outcome(world: World) -> LlmCompletion | LlmError:
    """A call's completion or its error, so a task group can run calls that fail."""
    try:
        return await world.llm.complete(ASK)
    except LlmError as exc:
        return exc


def start_call(tg: TaskGroup, world: World) -> Callable[[], LlmCompletion | LlmError]:
    """Start one call in ``tg``; the returned function gives its outcome once ``tg`` ends."""
    settled: list[LlmCompletion | LlmError] = []

    async def run() -> None:
        settled.append(await outcome(world))

    tg.start_soon(run)
    return lambda: settled[0]


async def test_a_retry_after_longer_than_the_budget_left_is_not_waited_for() -> None:
    async with built(total_timeout=10) as world:
        world.route.side_effect = [httpx.Response(429, headers={"Retry-After": "20"}), ok()]
        error = await failure(world)
        assert isinstance(error, LlmRateLimited)
        assert error.retry_after == 20.0
        assert world.route.call_count == 1
        assert world.sleeps == []


@pytest.mark.parametrize(
    ("elapsed", "retried"),
    [
        pytest.param(9.0, True, id="backoff-ends-before-the-deadline"),
        pytest.param(9.5, False, id="backoff-ends-at-the-deadline"),
        pytest.param(9.8, False, id="backoff-ends-past-the-deadline"),
    ],
)
async def test_a_backoff_that_would_end_past_the_deadline_is_not_made(
    elapsed: float, retried: bool
) -> None:
    async with built(total_timeout=10) as world:

        def first_fails_slowly(request: httpx.Request) -> httpx.Response:
            if world.jitter_ranges:  # a retry
                return ok()
            world.clock.advance(elapsed)
            return httpx.Response(500)

        world.route.side_effect = first_fails_slowly
        if retried:
            assert (await world.llm.complete(ASK)).text == "A summary."
        else:
            assert isinstance(await failure(world), LlmUnavailable)
        assert world.jitter_ranges == [(0.0, 0.5)]
        assert world.sleeps == ([0.5] if retried else [])
        assert world.route.call_count == (2 if retried else 1)


async def test_an_upstream_that_never_answers_times_out_within_the_budget() -> None:
    arrived: list[httpx.Request] = []
    async with built(total_timeout=SHORT) as world:
        world.route.side_effect = never_answers(arrived)
        error = await failure(world)
        assert isinstance(error, LlmTimeout)
        assert str(error) == f"the LLM provider did not answer within {SHORT:g} s"
        assert len(arrived) == 1
        assert world.sleeps == []


async def test_running_out_of_budget_counts_as_a_breaker_failure() -> None:
    arrived: list[httpx.Request] = []
    async with built(total_timeout=SHORT) as world:
        world.route.side_effect = never_answers(arrived)
        for _ in range(THRESHOLD):
            assert isinstance(await failure(world), LlmTimeout)
        assert world.state() is BreakerState.OPEN
        assert isinstance(await failure(world), LlmCircuitOpen)
        assert len(arrived) == THRESHOLD


async def test_time_spent_queueing_for_the_concurrency_cap_is_taken_from_the_budget() -> None:
    async with built(total_timeout=10, max_concurrency=1) as world:
        entered, release = anyio.Event(), anyio.Event()

        async def first_waits_then_fail(request: httpx.Request) -> httpx.Response:
            if entered.is_set():
                return httpx.Response(500)
            entered.set()
            await release.wait()
            return ok()

        world.route.side_effect = first_waits_then_fail
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(world.llm.complete, ASK)
                await entered.wait()
                queued = start_call(tg, world)
                await anyio.wait_all_tasks_blocked()
                world.clock.advance(9.8)  # the queued call now has 0.2 s left
                release.set()
        # With 0.2 s left, the 0.5 s backoff after its 500 is not made.
        assert isinstance(queued(), LlmUnavailable)
        assert world.sleeps == []
        assert world.route.call_count == 2


async def test_a_call_that_cannot_get_a_slot_within_its_budget_times_out_unsent() -> None:
    async with built(total_timeout=SHORT, max_concurrency=1) as world:
        arrived: list[httpx.Request] = []
        entered, release = anyio.Event(), anyio.Event()

        async def first_holds_its_slot(request: httpx.Request) -> httpx.Response:
            arrived.append(request)
            entered.set()
            # Shielded: a call stuck where its own timeout cannot reach keeps the slot.
            with anyio.CancelScope(shield=True):
                await release.wait()
            return ok()

        world.route.side_effect = first_holds_its_slot
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(outcome, world)
                await entered.wait()
                error = await failure(world)
                release.set()
        assert isinstance(error, LlmTimeout)
        assert len(arrived) == 1


async def test_the_budget_defaults_to_the_read_timeout() -> None:
    async with built(read_timeout=7.0) as world:
        assert world.llm.total_timeout == 7.0


@pytest.mark.parametrize("total_timeout", [0.0, -1.0, float("nan")])
def test_an_adapter_refuses_a_budget_that_is_not_positive(total_timeout: float) -> None:
    with pytest.raises(ValueError, match="timeouts must be positive"):
        OpenAICompatibleLlm(BASE, None, "m", total_timeout=total_timeout)
