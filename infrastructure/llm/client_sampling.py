"""The ``LlmGateway`` port over the MCP client's own LLM (sampling), in both protocol eras.

- Legacy (initialize-era) stateful sessions: ``ClientSamplingLlm`` sends
  ``sampling/createMessage`` back to the client that called a tool, on that call's stream.
- 2026-07-28 requests have no back-channel: the tool answers with ``input_request(...)`` (an
  ``InputRequiredResult``), the client's LLM writes, the client calls the tool again with the
  answer, and ``AnsweredSamplingLlm`` turns that answer into the completion.

MCP and transport errors never leave this module: each becomes an ``LlmError`` leaf, and no
message carries a traceback. Cancellation of the calling tool is never swallowed.
"""

import json
import time
import warnings
from collections.abc import Callable

import anyio
import fastmcp
from mcp import MCPDeprecationWarning, MCPError
from mcp.shared.exceptions import NoBackChannelError
from mcp.types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    InputRequiredResult,
    ModelHint,
    SamplingMessage,
    TextContent,
)
from mcp.types import ModelPreferences as McpModelPreferences
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from domain.generation import ClientSampling
from domain.llm import (
    LlmBadResponse,
    LlmCompletion,
    LlmRequest,
    LlmTimeout,
    ModelPreferences,
    Role,
    SamplingFailed,
    SamplingUnavailable,
)

PROVIDER = "mcp-client"
MAX_MODEL_NAME_LENGTH = 128
MAX_CLIENT_MESSAGE_LENGTH = 200
UNKNOWN_MODEL = "unknown"
INPUT_KEY = "llm"  # the one input a generation tool asks a 2026-07-28 client for
STATE_VERSION = 1


def is_modern(context: fastmcp.Context) -> bool:
    """Whether this request speaks the sessionless 2026-07-28 revision (or later)."""
    request = context.request_context
    return request is not None and request.protocol_version in MODERN_PROTOCOL_VERSIONS


def client_sampling(context: fastmcp.Context, *, stateless: bool) -> ClientSampling:
    """Whether this request's client can lend its LLM.

    2026-07-28 requests declare their capabilities on every request and can always be asked
    through an input-required round trip. A legacy request needs a stateful session: in
    stateless mode the server cannot carry a request back to the client (``STATELESS``).
    Otherwise ``AVAILABLE`` when the client declared the sampling capability, else
    ``NOT_OFFERED``.
    """
    if stateless and not is_modern(context):
        return ClientSampling.STATELESS
    return ClientSampling.AVAILABLE if _offers_sampling(context) else ClientSampling.NOT_OFFERED


def _offers_sampling(context: fastmcp.Context) -> bool:
    """Whether the client declared the sampling capability (initialize, or this request)."""
    capabilities = context.session.client_capabilities
    return capabilities is not None and capabilities.sampling is not None


def _sampling_params(request: LlmRequest) -> CreateMessageRequestParams:
    return CreateMessageRequestParams(
        messages=[_message(m.role, m.text) for m in request.messages],
        system_prompt=request.system_prompt,
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        model_preferences=_preferences(request.model_preferences),
    )


def input_request(request: LlmRequest, *, asked_at: float) -> InputRequiredResult:
    """What a 2026-07-28 tool call answers to have the client's LLM write ``request``.

    ``asked_at`` (wall-clock seconds) travels in the request state, sealed by the SDK and bound
    to this call's arguments, so the retry can tell how long the client's LLM took.
    """
    state = json.dumps({"v": STATE_VERSION, "asked_at": asked_at}, separators=(",", ":"))
    return InputRequiredResult(
        input_requests={INPUT_KEY: CreateMessageRequest(params=_sampling_params(request))},
        request_state=state,
    )


def client_answer(context: fastmcp.Context) -> object | None:
    """The client's answer to ``input_request``, on the retry of a 2026-07-28 call."""
    responses = context.input_responses
    return None if responses is None else responses.get(INPUT_KEY)


class AnsweredSamplingLlm:
    """The client's LLM after it has answered a 2026-07-28 input request.

    ``complete`` asks nothing: the answer came with the retried call. Token usage is ``None``
    (sampling results report none); latency is the time since the request was asked.
    """

    def __init__(
        self,
        answer: object,
        request_state: str | None,
        *,
        provider: str = PROVIDER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._answer = answer
        self._asked_at = _asked_at(request_state)
        self.provider = provider
        self._clock = clock

    async def complete(self, request: LlmRequest) -> LlmCompletion:
        """The client's answer, checked.

        Raises:
            LlmBadResponse: the answer is not a sampling result of non-empty text.
        """
        answer = self._answer
        if not isinstance(answer, CreateMessageResult | CreateMessageResultWithTools):
            raise LlmBadResponse("The client answered the sampling request with something else")
        latency = 0.0 if self._asked_at is None else (self._clock() - self._asked_at) * 1000
        return _completion(answer, self.provider, latency)


def _asked_at(request_state: str | None) -> float | None:
    # Sealed and authenticated by the SDK, so a malformed state is our own older format.
    try:
        state = json.loads(request_state or "")
        asked = state["asked_at"] if state.get("v") == STATE_VERSION else None
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    return float(asked) if isinstance(asked, int | float) else None


class ClientSamplingLlm:
    """Generates text with the LLM of the client of one legacy stateful session's request."""

    def __init__(
        self, context: fastmcp.Context, *, timeout: float, provider: str = PROVIDER
    ) -> None:
        """Bind the adapter to one request (nothing is sent until ``complete``).

        Args:
            timeout: seconds the client's LLM has to answer one ``complete`` call.
        """
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.provider = provider
        self._context = context

    async def complete(self, request: LlmRequest) -> LlmCompletion:
        """The client's LLM's completion of ``request``.

        Token usage is ``None``: MCP sampling results report none.

        Raises:
            SamplingUnavailable: the client did not declare the sampling capability.
            SamplingFailed: the client answered with an error, or the session failed.
            LlmTimeout: the client's LLM did not answer within ``timeout``.
            LlmBadResponse: the answer is not non-empty text.
        """
        started = time.perf_counter()
        context = self._context
        params = _sampling_params(request)
        try:
            if not _offers_sampling(context):
                raise SamplingUnavailable(
                    "This MCP client does not offer sampling, so its LLM cannot be asked"
                )
            with anyio.fail_after(self.timeout):
                # The SDK warns on every call that sampling is deprecated (SEP-2577); the
                # operator is told once, at start-up. The warning fires at the call itself,
                # so no await runs while the filter is changed.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    pending = context.session.create_message(
                        params.messages,
                        max_tokens=params.max_tokens,
                        system_prompt=params.system_prompt,
                        temperature=params.temperature,
                        model_preferences=params.model_preferences,
                        related_request_id=context.request_id,
                    )
                answer = await pending
        except TimeoutError:
            raise LlmTimeout(f"The client's LLM did not answer within {self.timeout:g} s") from None
        except SamplingUnavailable:
            raise
        except NoBackChannelError as exc:  # before MCPError, which it subclasses
            raise SamplingUnavailable(
                "This request cannot carry a sampling request back to the client"
            ) from exc
        except MCPError as exc:  # the client sent a JSON-RPC error
            raise SamplingFailed(
                f"The client's LLM did not generate: {_client_reason(exc.message)}"
            ) from exc
        except ValidationError as exc:
            raise LlmBadResponse("The client's sampling answer is malformed") from exc
        # The port promises only LlmError leaves, and the SDK's sampling path (session,
        # streams) has no common error base. Cancellation is a BaseException and passes.
        except Exception as exc:
            raise _failed(exc) from exc
        return _completion(answer, self.provider, (time.perf_counter() - started) * 1000)


def _completion(
    answer: CreateMessageResult | CreateMessageResultWithTools, provider: str, latency_ms: float
) -> LlmCompletion:
    return LlmCompletion(
        text=_text(answer),
        model=answer.model.strip()[:MAX_MODEL_NAME_LENGTH] or UNKNOWN_MODEL,
        provider=provider,
        input_tokens=None,
        output_tokens=None,
        latency_ms=max(0.0, latency_ms),
    )


def _failed(exc: Exception) -> SamplingFailed:
    return SamplingFailed(f"Sampling the client's LLM failed ({type(exc).__name__})")


def _message(role: Role, text: str) -> SamplingMessage:
    return SamplingMessage(role=role, content=TextContent(type="text", text=text))


def _preferences(preferences: ModelPreferences | None) -> McpModelPreferences | None:
    if preferences is None:
        return None
    return McpModelPreferences(
        hints=[ModelHint(name=hint) for hint in preferences.hints] or None,
        cost_priority=preferences.cost_priority,
        speed_priority=preferences.speed_priority,
        intelligence_priority=preferences.intelligence_priority,
    )


def _client_reason(message: str) -> str:
    # The client's text is untrusted: one line, bounded, so it cannot flood an error body.
    reason = " ".join(message.split())
    if not reason:
        return "no reason given"
    if len(reason) > MAX_CLIENT_MESSAGE_LENGTH:
        return reason[: MAX_CLIENT_MESSAGE_LENGTH - 1] + "…"
    return reason


def _text(response: CreateMessageResult | CreateMessageResultWithTools) -> str:
    # A list only comes from a server-side fallback handler or a tool-enabled answer.
    blocks = response.content if isinstance(response.content, list) else [response.content]
    texts = [block.text for block in blocks if isinstance(block, TextContent)]
    if len(texts) != len(blocks):
        kinds = ", ".join(sorted({block.type for block in blocks} - {"text"}))
        raise LlmBadResponse(f"The client's LLM answered with {kinds} content, not text")
    text = "".join(texts)
    if not text.strip():
        raise LlmBadResponse("The client's LLM answered with empty text")
    return text
