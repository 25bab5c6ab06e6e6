"""Honest fakes: real behaviour, with a switch the tests control."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from fastmcp.client.sampling import RequestContext, SamplingMessage, SamplingParams
from mcp import ClientSession
from mcp.types import CreateMessageResult, CreateMessageResultWithTools, TextContent

from domain.keys import ApiKeyInfo
from domain.llm import LlmCompletion, LlmError, LlmRequest
from domain.ports import KeyStore, KeyStoreUnavailable
from infrastructure.metrics import Metrics


def verifications(metrics: Metrics) -> float:
    """How many argon2 verifications ``metrics`` has counted."""
    return metrics.registry.get_sample_value("ctxfy_auth_verifications_total") or 0.0


START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """Wall time and monotonic time, moved together and only by the test."""

    wall: datetime = START
    mono: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class SwitchableKeyStore:
    """A real key store that a test can take away (``down = True``) and bring back."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner = inner
        self.down = False
        self.gets = 0

    def _check(self) -> None:
        if self.down:
            raise KeyStoreUnavailable("taken away by the test")

    async def start(self) -> None:
        self._check()
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        self._check()
        await self.inner.ping()

    async def add(self, info: ApiKeyInfo) -> None:
        self._check()
        await self.inner.add(info)

    async def get(self, key_id: str) -> ApiKeyInfo | None:
        self._check()
        self.gets += 1
        return await self.inner.get(key_id)

    async def list(self, *, user_id: str | None = None) -> Sequence[ApiKeyInfo]:
        self._check()
        return await self.inner.list(user_id=user_id)

    async def revoke(self, key_id: str, at: datetime) -> ApiKeyInfo | None:
        self._check()
        return await self.inner.revoke(key_id, at)

    async def rotate(self, old_key_id: str, new: ApiKeyInfo, old_expires_at: datetime) -> None:
        self._check()
        await self.inner.rotate(old_key_id, new, old_expires_at)

    async def update_hash(self, key_id: str, api_key_hash: str) -> None:
        self._check()
        await self.inner.update_hash(key_id, api_key_hash)

    async def record_usage(self, last_used: Mapping[str, datetime]) -> None:
        self._check()
        await self.inner.record_usage(last_used)


def completion(
    text: str = "# Rotating the signing keys\n\nThe finished document.",
    *,
    model: str = "gpt-test-2026",
    provider: str = "openai-compatible",
    input_tokens: int | None = 120,
    output_tokens: int | None = 30,
    latency_ms: float = 12.34,
) -> LlmCompletion:
    """An LLM's answer, as the server-side adapter reports one."""
    return LlmCompletion(
        text=text,
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=latency_ms,
    )


def served(prompt: str = "context_stack", version: str = "1.0.0") -> dict[str, object]:
    """What a caller receives for ``prompt`` (``version``, not deprecated) when the server's
    LLM answers ``completion()``."""
    answer = completion()
    return {
        "prompt": prompt,
        "version": version,
        "deprecated": False,
        "document": answer.text,
        "route": "server",
        "provider": answer.provider,
        "model": answer.model,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "latency_ms": round(answer.latency_ms, 1),
    }


class ScriptedLlm:
    """An ``LlmGateway`` that answers from a script and records every request it gets.

    Answers are given in order and the last one repeats; an ``LlmError`` in the script is
    raised. With ``gate`` set, every call waits for it before answering.
    """

    def __init__(self, *script: LlmCompletion | LlmError, gate: anyio.Event | None = None) -> None:
        self.script = list(script) or [completion()]
        self.gate = gate
        self.requests: list[LlmRequest] = []

    async def complete(self, request: LlmRequest) -> LlmCompletion:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, LlmError):
            raise answer
        return answer


type SamplingAnswer = CreateMessageResult | CreateMessageResultWithTools


def said(text: str = "A summary.", model: str = "fake-model-1") -> CreateMessageResult:
    """A client LLM's text answer to a sampling request."""
    return CreateMessageResult(
        role="assistant", content=TextContent(type="text", text=text), model=model
    )


@dataclass
class ClientLlm:
    """An MCP client's own LLM, as fastmcp's ``sampling_handler``.

    Records every request's parameters, awaits ``until`` when given (an LLM slower than
    the server allows), then answers ``answer``, or raises it.
    """

    answer: SamplingAnswer | Exception = field(default_factory=said)
    until: Callable[[], Awaitable[object]] | None = None
    received: list[SamplingParams] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text this LLM answers with."""
        assert isinstance(self.answer, CreateMessageResult)
        assert isinstance(self.answer.content, TextContent)
        return self.answer.content.text

    async def __call__(
        self,
        messages: list[SamplingMessage],
        params: SamplingParams,
        context: RequestContext[ClientSession, Any],
    ) -> SamplingAnswer:
        self.received.append(params)
        if self.until is not None:
            await self.until()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class HeldLlm:
    """An ``LlmGateway`` whose calls wait until the test releases them, counting each call
    held, answered and cancelled; ``until(...)`` waits (unbounded: wrap it) for a count."""

    def __init__(self, answer: LlmCompletion | None = None) -> None:
        self.answer = answer or completion()
        self.held = self.answered = self.cancelled = 0
        self._released = False
        self._changed: anyio.Event | None = None  # made in the event loop, on first use

    async def complete(self, request: LlmRequest) -> LlmCompletion:
        self.held += 1
        self._notify()
        try:
            while not self._released:
                await self._event().wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        finally:
            self.held -= 1
            self._notify()
        self.answered += 1
        return self.answer

    def release(self) -> None:
        """Let every held call, and every later one, answer."""
        self._released = True
        self._notify()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; it is checked whenever a count changes."""
        while not condition():
            await self._event().wait()

    def _event(self) -> anyio.Event:
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
