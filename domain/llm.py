"""Server-side LLM generation: requests, completions, errors and the ``LlmGateway`` port.

Every generation Ctxfy does on the server goes through ``LlmGateway`` (DESIGN D1), so the
provider, its HTTP client and the MCP sampling story can change behind one seam.
"""

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from domain.errors import CtxfyError

MAX_TOKENS_LIMIT = 200_000
TEMPERATURE_MAX = 2.0
MAX_MODEL_HINTS = 8
MAX_MODEL_HINT_LENGTH = 128

type Role = Literal["user", "assistant"]
_ROLES = frozenset({"user", "assistant"})


@dataclass(frozen=True, slots=True)
class LlmMessage:
    """One turn of a conversation sent to a model."""

    role: Role
    text: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError("role must be 'user' or 'assistant'")
        if not self.text:
            raise ValueError("a message needs text")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPreferences:
    """Which model a prompt would like, as MCP sampling expresses it.

    Advisory: a client maps ``hints`` (model-name substrings, in order of preference) and the
    0–1 priorities onto the models it has. The server-side LLM always uses the model its
    operator configured.
    """

    hints: tuple[str, ...] = ()
    cost_priority: float | None = None
    speed_priority: float | None = None
    intelligence_priority: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.hints, tuple):
            raise TypeError("hints must be a tuple")
        if len(self.hints) > MAX_MODEL_HINTS:
            raise ValueError(f"at most {MAX_MODEL_HINTS} model hints")
        for hint in self.hints:
            if not hint.strip() or len(hint) > MAX_MODEL_HINT_LENGTH:
                raise ValueError(
                    f"a model hint must be non-empty and at most {MAX_MODEL_HINT_LENGTH} characters"
                )
        for label, priority in self.priorities():
            if priority is not None and not (math.isfinite(priority) and 0 <= priority <= 1):
                raise ValueError(f"{label} must be between 0 and 1")

    def priorities(self) -> tuple[tuple[str, float | None], ...]:
        """The three priorities by name, unset ones as ``None``."""
        return (
            ("cost_priority", self.cost_priority),
            ("speed_priority", self.speed_priority),
            ("intelligence_priority", self.intelligence_priority),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LlmRequest:
    """What to ask a model: the conversation, an optional system prompt and sampling limits."""

    messages: tuple[LlmMessage, ...]
    system_prompt: str | None = None
    max_tokens: int = 1024
    temperature: float | None = None
    model_preferences: ModelPreferences | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.messages, tuple):
            raise TypeError("messages must be a tuple")
        if not self.messages:
            raise ValueError("a request needs at least one message")
        if isinstance(self.max_tokens, bool) or not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise ValueError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
        if self.temperature is not None and not (
            math.isfinite(self.temperature) and 0 <= self.temperature <= TEMPERATURE_MAX
        ):
            raise ValueError(f"temperature must be between 0 and {TEMPERATURE_MAX}")
        if self.system_prompt is not None and not self.system_prompt:
            raise ValueError("system_prompt must be None or non-empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class LlmCompletion:
    """A model's answer, with who produced it, what it cost and how long it took."""

    text: str
    model: str
    provider: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("a completion names its model")
        if not self.provider:
            raise ValueError("a completion names its provider")
        for label, tokens in (
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
        ):
            if tokens is not None and tokens < 0:
                raise ValueError(f"{label} must be non-negative")
        if not self.latency_ms >= 0:
            raise ValueError("latency must be non-negative")


class LlmError(CtxfyError):
    """Server-side generation failed."""

    code = "llm_error"


class LlmNotConfigured(LlmError):
    """No server-side LLM is configured."""

    code = "llm_not_configured"


class LlmUnavailable(LlmError):
    """The LLM provider cannot be reached or kept failing (connection errors, 5xx)."""

    code = "llm_unavailable"


class LlmRejected(LlmError):
    """The LLM provider refused the request (a 4xx other than 429)."""

    code = "llm_rejected"

    def __init__(self, status: int) -> None:
        super().__init__(f"The LLM provider refused the request (HTTP {status})")
        self.status = status


class LlmRateLimited(LlmError):
    """The LLM provider kept answering 429 Too Many Requests."""

    code = "llm_rate_limited"

    def __init__(self, retry_after: float | None) -> None:
        hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        super().__init__(f"The LLM provider is rate limiting requests{hint}")
        self.retry_after = retry_after


class LlmTimeout(LlmError):
    """The LLM provider did not answer in time."""

    code = "llm_timeout"


class LlmBadResponse(LlmError):
    """The LLM provider answered with something that is not a usable completion."""

    code = "llm_bad_response"


class LlmCircuitOpen(LlmError):
    """Recent calls to the LLM provider failed, so calls are refused for a while."""

    code = "llm_circuit_open"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"The LLM provider is failing; retry after {retry_after:g} s")
        self.retry_after = retry_after


class SamplingError(LlmError):
    """Generation with the MCP client's own LLM (sampling) failed."""

    code = "sampling_error"


class SamplingUnavailable(SamplingError):
    """The MCP client cannot sample its own LLM for this request."""

    code = "sampling_unavailable"


class SamplingFailed(SamplingError):
    """The MCP client's LLM was asked and refused or failed (the client sent an error)."""

    code = "sampling_failed"


class LlmGateway(Protocol):
    """Generates text with an LLM (the seeds' ``LLMAdapterPort``).

    Adapters: ``OpenAICompatibleLlm`` over any OpenAI Chat Completions endpoint. ``complete``
    raises only ``LlmError`` leaves.
    """

    async def complete(self, request: LlmRequest) -> LlmCompletion:
        """The model's completion of ``request``."""
