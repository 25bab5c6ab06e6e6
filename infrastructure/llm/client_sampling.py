"""``ClientSamplingLlm``: the ``LlmGateway`` port over the MCP client's own LLM (sampling).

The server sends ``sampling/createMessage`` back to the client that called a tool, through
FastMCP's ``Context.sample_step``, and the client's LLM generates. MCP and transport errors
never leave this module: each becomes an ``LlmError`` leaf, and no message carries a
traceback. Cancellation of the calling tool is never swallowed.
"""

import time

import anyio
import fastmcp
from mcp import McpError
from mcp.types import (
    ClientCapabilities,
    CreateMessageResult,
    CreateMessageResultWithTools,
    ModelHint,
    SamplingCapability,
    SamplingMessage,
    TextContent,
)
from mcp.types import ModelPreferences as McpModelPreferences
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

# FastMCP 3.4's ValueError for a client without the sampling capability (and no server-side
# fallback handler); it has no dedicated exception type, so the message is all there is.
_NOT_SUPPORTED = "Client does not support sampling"


def client_sampling(context: fastmcp.Context, *, stateless: bool) -> ClientSampling:
    """Whether this request's client can lend its LLM.

    ``STATELESS`` when the server runs stateless (decided without touching the session, which
    cannot carry a request back to the client there), ``AVAILABLE`` when the client declared
    the sampling capability, else ``NOT_OFFERED``.
    """
    if stateless:
        return ClientSampling.STATELESS
    offered = context.session.check_client_capability(
        ClientCapabilities(sampling=SamplingCapability())
    )
    return ClientSampling.AVAILABLE if offered else ClientSampling.NOT_OFFERED


class ClientSamplingLlm:
    """Generates text with the LLM of the MCP client behind one request's ``Context``."""

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
        try:
            with anyio.fail_after(self.timeout):
                step = await self._context.sample_step(
                    [_message(m.role, m.text) for m in request.messages],
                    system_prompt=request.system_prompt,
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    model_preferences=_preferences(request.model_preferences),
                )
        except TimeoutError:
            raise LlmTimeout(f"The client's LLM did not answer within {self.timeout:g} s") from None
        except McpError as exc:  # the client sent a JSON-RPC error
            raise SamplingFailed(
                f"The client's LLM did not generate: {_client_reason(exc.error.message)}"
            ) from exc
        except ValidationError as exc:  # before ValueError, which it subclasses
            raise LlmBadResponse("The client's sampling answer is malformed") from exc
        except ValueError as exc:
            if str(exc).startswith(_NOT_SUPPORTED):
                raise SamplingUnavailable(
                    "This MCP client does not offer sampling, so its LLM cannot be asked"
                ) from exc
            raise _failed(exc) from exc
        # The port promises only LlmError leaves, and FastMCP's sampling path (session,
        # streams, telemetry, an optional server-side handler) has no common error base.
        # Cancellation is a BaseException and passes through.
        except Exception as exc:
            raise _failed(exc) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        return LlmCompletion(
            text=_text(step.response),
            model=step.response.model.strip()[:MAX_MODEL_NAME_LENGTH] or UNKNOWN_MODEL,
            provider=self.provider,
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
        costPriority=preferences.cost_priority,
        speedPriority=preferences.speed_priority,
        intelligencePriority=preferences.intelligence_priority,
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
