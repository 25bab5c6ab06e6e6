"""A respx-mocked Chat Completions endpoint with driven clocks, for the LLM adapter's tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
import respx

from domain.llm import (
    LlmError,
    LlmMessage,
    LlmRequest,
)
from infrastructure.llm.breaker import BreakerState, CircuitBreaker
from infrastructure.llm.openai_compatible import OpenAICompatibleLlm

BASE = "https://llm.test/v1"
KEY = "sk-server-only-0123456789"
THRESHOLD = 3
COOLDOWN = 30.0
ASK = LlmRequest(messages=(LlmMessage("user", "Summarise this."),), max_tokens=64)


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


async def failure(world: World, request: LlmRequest = ASK) -> LlmError:
    with anyio.fail_after(5), pytest.raises(LlmError) as raised:
        await world.llm.complete(request)
    assert KEY not in str(raised.value)
    return raised.value
