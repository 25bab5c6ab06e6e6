"""``OpenAICompatibleLlm``: the ``LlmGateway`` port over OpenAI Chat Completions.

Works with any server that speaks ``POST {base_url}/chat/completions`` (OpenAI, vLLM,
Ollama, LiteLLM, …). Only the key configured here is sent upstream; a caller's credentials
never are. httpx and JSON errors never leave this module: each becomes an ``LlmError`` leaf,
and no error message carries the API key or the upstream's response body.
"""

import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from domain.llm import (
    LlmBadResponse,
    LlmCompletion,
    LlmNotConfigured,
    LlmRateLimited,
    LlmRejected,
    LlmRequest,
    LlmTimeout,
    LlmUnavailable,
)
from infrastructure.llm.breaker import CircuitBreaker

PROVIDER = "openai-compatible"
MAX_CONNECT_TIMEOUT_S = 5.0
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
RETRY_AFTER_CAP_S = 30.0

# Connection never established, so the request cannot have reached the model.
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


class _Retryable(Exception):
    """One attempt failed in a way worth another try; carries the error to raise if not."""

    def __init__(self, error: LlmUnavailable | LlmRateLimited, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class OpenAICompatibleLlm:
    """Generates text with an OpenAI-compatible Chat Completions endpoint."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        total_timeout: float | None = None,
        max_retries: int = 2,
        max_concurrency: int = 8,
        breaker: CircuitBreaker | None = None,
        provider: str = PROVIDER,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """Build the adapter (no connection is made until the first call).

        Args:
            total_timeout: the budget of one ``complete`` call, queueing for the concurrency
                cap and retries included (default ``read_timeout``); past it the call
                raises ``LlmTimeout``, and a retry that would end past it is not made.
            breaker: defaults to a ``CircuitBreaker`` on the ``monotonic`` clock.
            sleep: awaited for retry backoff; tests pass one that only records delays.
            uniform: draws the full-jitter backoff delay.

        Raises:
            LlmNotConfigured: ``base_url`` or ``model`` is empty.
        """
        if not base_url.strip() or not model.strip():
            raise LlmNotConfigured("an OpenAI-compatible LLM needs a base URL and a model")
        if max_retries < 0:
            raise ValueError("max_retries must be non-negative")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        total_timeout = read_timeout if total_timeout is None else total_timeout
        if (
            not 0 < connect_timeout <= MAX_CONNECT_TIMEOUT_S
            or not read_timeout > 0
            or not total_timeout > 0
        ):
            raise ValueError(
                f"timeouts must be positive, the connect one ≤ {MAX_CONNECT_TIMEOUT_S}"
            )
        self.model = model
        self.total_timeout = total_timeout
        self.provider = provider
        self._max_retries = max_retries
        self._breaker = breaker or CircuitBreaker(clock=monotonic)
        self._limit = anyio.Semaphore(max_concurrency)
        self._now = now
        self._monotonic = monotonic
        self._sleep = sleep
        self._uniform = uniform
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_concurrency),
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    async def complete(self, request: LlmRequest) -> LlmCompletion:
        """The model's completion of ``request``.

        Raises:
            LlmCircuitOpen: recent calls failed; no request was sent.
            LlmRejected, LlmRateLimited, LlmUnavailable, LlmTimeout, LlmBadResponse: as named.
        """
        if self._client.is_closed:
            raise LlmUnavailable("the LLM client is closed")
        self._breaker.check()  # fail fast rather than queue behind the concurrency cap
        deadline = self._monotonic() + self.total_timeout
        try:
            with anyio.fail_after(self.total_timeout):
                await self._limit.acquire()
        except TimeoutError:
            raise self._timed_out() from None
        try:
            started = self._monotonic()
            with self._breaker.guard():
                body = await self._post_within(self._body(request), deadline - started, deadline)
            return self._completion(body, (self._monotonic() - started) * 1000)
        finally:
            self._limit.release()

    async def close(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    def _timed_out(self) -> LlmTimeout:
        return LlmTimeout(f"the LLM provider did not answer within {self.total_timeout:g} s")

    async def _post_within(self, body: dict[str, Any], budget: float, deadline: float) -> Any:
        # Raised inside the breaker's guard, so a call that runs out of time counts as a failure.
        try:
            with anyio.fail_after(max(budget, 0.0)):
                return await self._post_with_retries(body, deadline)
        except TimeoutError:
            raise self._timed_out() from None

    def _body(self, request: LlmRequest) -> dict[str, Any]:
        messages = []
        if request.system_prompt:
            messages.append({"role": "system", "content": request.system_prompt})
        messages += [{"role": m.role, "content": m.text} for m in request.messages]
        body: dict[str, Any] = {
            # The operator's model always: a prompt's model preferences advise clients only.
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    async def _post_with_retries(self, body: dict[str, Any], deadline: float) -> Any:
        for attempt in range(self._max_retries + 1):
            try:
                return await self._post(body)
            except _Retryable as retry:
                if attempt == self._max_retries:
                    raise retry.error from retry.error.__cause__
                delay = self._delay(attempt, retry.retry_after)
                if self._monotonic() + delay >= deadline:  # the wait alone would overrun
                    raise retry.error from retry.error.__cause__
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP_S)
        return self._uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempt, 16)))

    async def _post(self, body: dict[str, Any]) -> Any:
        try:
            response = await self._client.post("/chat/completions", json=body)
        except _CONNECT_ERRORS as exc:
            error = LlmUnavailable(f"cannot connect to the LLM provider ({type(exc).__name__})")
            error.__cause__ = exc
            raise _Retryable(error, None) from exc
        except httpx.TimeoutException as exc:
            raise LlmTimeout(
                f"the LLM provider did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise LlmUnavailable(f"the LLM provider call failed ({type(exc).__name__})") from exc
        status = response.status_code
        if status == httpx.codes.TOO_MANY_REQUESTS:
            retry_after = self._retry_after(response.headers.get("Retry-After"))
            raise _Retryable(LlmRateLimited(retry_after), retry_after)
        if status >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise _Retryable(LlmUnavailable(f"the LLM provider failed (HTTP {status})"), None)
        if status >= httpx.codes.BAD_REQUEST:
            raise LlmRejected(status)
        if status != httpx.codes.OK:
            raise LlmBadResponse(f"the LLM provider answered HTTP {status}, expected 200")
        try:
            return response.json()
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
            raise LlmBadResponse("the LLM provider's answer is not JSON") from exc

    def _retry_after(self, header: str | None) -> float | None:
        """Seconds the ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
        if header is None:
            return None
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(header) - self._now()).total_seconds()
            except (TypeError, ValueError):
                return None
        return max(0.0, seconds) if math.isfinite(seconds) else None

    def _completion(self, body: Any, latency_ms: float) -> LlmCompletion:
        try:
            text = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LlmBadResponse("the LLM provider's answer has no choices[0].message") from exc
        if not isinstance(text, str):
            raise LlmBadResponse("the LLM provider's answer has no text content")
        model = body.get("model")
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return LlmCompletion(
            text=text,
            model=model if isinstance(model, str) and model else self.model,
            provider=self.provider,
            input_tokens=_tokens(usage.get("prompt_tokens")),
            output_tokens=_tokens(usage.get("completion_tokens")),
            latency_ms=max(0.0, latency_ms),
        )


def _tokens(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
