"""Generation: a catalog prompt, rendered, turned into a finished document by an LLM.

``Generator`` is the one place that picks the LLM (``CTXFY_LLM_MODE``, ``choose_route``),
calls it through the ``LlmGateway`` port, and records the call in metrics and on the
request's access line. REST and the MCP tools differ only in whether a client LLM exists.
"""

import math
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import structlog
from pydantic import BaseModel, Field

from domain.errors import PromptRenderError
from domain.generation import ClientSampling, LlmMode, Route, choose_route
from domain.llm import (
    LlmBadResponse,
    LlmCircuitOpen,
    LlmCompletion,
    LlmError,
    LlmGateway,
    LlmMessage,
    LlmNotConfigured,
    LlmRateLimited,
    LlmRejected,
    LlmRequest,
    LlmTimeout,
    LlmUnavailable,
    SamplingFailed,
    SamplingUnavailable,
)
from domain.prompts import GenerationSettings, RenderedPrompt, Scalar
from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.llm import client_sampling, openai_compatible
from infrastructure.metrics import Metrics, Outcome

logger = structlog.get_logger(__name__)

# The metrics label for models a client picks: their names are the client's to choose,
# so they go on the log line, never into a label.
CLIENT_MODEL_LABEL = "client"

# Error code and REST status of each LLM failure (MCP tool errors carry the same codes).
_FAILURES: tuple[tuple[type[LlmError], str, int], ...] = (
    (LlmNotConfigured, "llm_not_configured", 503),
    (SamplingUnavailable, "sampling_unavailable", 503),
    (SamplingFailed, "sampling_failed", 502),
    (LlmRejected, "llm_rejected", 502),
    (LlmUnavailable, "llm_unavailable", 502),
    (LlmBadResponse, "llm_bad_response", 502),
    (LlmRateLimited, "llm_rate_limited", 503),
    (LlmTimeout, "llm_timeout", 504),
    (LlmCircuitOpen, "llm_circuit_open", 503),
)


@dataclass(frozen=True, slots=True)
class Failure:
    """How an LLM failure is reported: a stable code, an HTTP status, a retry hint."""

    code: str
    status: int
    retry_after: int | None


def failure_of(error: LlmError) -> Failure:
    """The code, status and ``Retry-After`` seconds (rounded up) for ``error``."""
    code, status = next(
        ((c, s) for kind, c, s in _FAILURES if isinstance(error, kind)), ("llm_error", 502)
    )
    seconds = getattr(error, "retry_after", None)
    retry_after = max(1, math.ceil(seconds)) if isinstance(seconds, int | float) else None
    return Failure(code, status, retry_after)


class GeneratedDocument(BaseModel):
    """A generated document with how it was made: the REST body and the MCP tool result."""

    prompt: str = Field(examples=["context_stack"])
    document: str = Field(description="The finished document, as the LLM wrote it.")
    route: Route = Field(
        description="Whose LLM wrote it: the MCP client's own (sampling) or the server's."
    )
    provider: str = Field(examples=["openai-compatible"])
    model: str = Field(description="The model that answered, as its provider named it.")
    input_tokens: int | None = Field(description="Prompt tokens, when the provider says.")
    output_tokens: int | None = Field(description="Completion tokens, when the provider says.")
    latency_ms: float = Field(description="How long the LLM took.")

    @classmethod
    def of(cls, plan: "Plan", completion: LlmCompletion) -> "GeneratedDocument":
        """What ``plan`` produced when its LLM answered ``completion``."""
        return cls(
            prompt=plan.prompt,
            document=completion.text,
            route=plan.route,
            provider=completion.provider,
            model=completion.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            latency_ms=round(completion.latency_ms, 1),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """A generation ready to send: the prompt, the LLM picked for it, what it is asked."""

    prompt: str
    route: Route
    request: LlmRequest


def llm_request(rendered: RenderedPrompt, settings: GenerationSettings) -> LlmRequest:
    """What the LLM is asked: the rendered messages under the prompt's generation settings.

    Messages a template rendered empty (an optional section left out) are dropped.

    Raises:
        PromptRenderError: every message rendered empty.
    """
    messages = tuple(LlmMessage(m.role, m.text) for m in rendered.messages if m.text)
    if not messages:
        raise PromptRenderError(rendered.name, "every message rendered empty")
    return LlmRequest(
        messages=messages,
        system_prompt=settings.system_prompt,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        model_preferences=settings.model_preferences,
    )


class Generator:
    """Turns catalog prompts into documents with the LLM the policy picks."""

    def __init__(
        self,
        *,
        mode: LlmMode,
        server: LlmGateway | None,
        server_model: str | None,
        metrics: Metrics,
    ) -> None:
        self.mode = mode
        self.server = server
        self._server_model = server_model
        self._metrics = metrics

    def plan(
        self,
        entry: CatalogEntry,
        values: Mapping[str, Scalar | None],
        sampling: ClientSampling,
        *,
        log: MutableMapping[str, Any] | None = None,
    ) -> Plan:
        """Pick the LLM and render what it will be asked; nothing is sent yet.

        Args:
            values: arguments ``entry.validate`` accepted.
            sampling: whether the caller can lend its LLM (REST: ``NO_CLIENT``).
            log: the request's access-line fields; a refusal's code is added to it.

        Raises:
            LlmNotConfigured, SamplingUnavailable: no LLM may serve this request.
            PromptRenderError: the prompt renders to nothing an LLM could be asked.
        """
        fields = log if log is not None else {}
        settings = entry.definition.generation
        try:
            if settings is None:
                raise LlmNotConfigured(f"Prompt {entry.name!r} does not generate documents")
            route = choose_route(self.mode, sampling, server_configured=self.server is not None)
        except LlmError as exc:
            fields["llm_error"] = failure_of(exc).code
            raise
        fields["llm_route"] = route.value
        return Plan(entry.name, route, llm_request(entry.render_validated(values), settings))

    async def generate(
        self,
        plan: Plan,
        *,
        client: Callable[[], LlmGateway] | None = None,
        log: MutableMapping[str, Any] | None = None,
    ) -> GeneratedDocument:
        """Have the planned LLM write the document.

        Args:
            client: builds the client-sampling gateway; required for ``Route.CLIENT``.
            log: the request's access-line fields; the LLM's part is added to it.

        Raises:
            LlmError: a leaf naming what failed (see ``failure_of``).
        """
        route = plan.route
        gateway = self._gateway(route, client)
        fields = log if log is not None else {}
        started = perf_counter()
        try:
            completion = await gateway.complete(plan.request)
        except LlmError as exc:
            failure = failure_of(exc)
            fields["llm_error"] = failure.code
            self._record(route, "error", perf_counter() - started, None, None)
            logger.warning(
                "generation_failed", prompt=plan.prompt, route=route.value, error=failure.code
            )
            raise
        fields.update(
            llm_provider=completion.provider,
            llm_model=completion.model,
            llm_input_tokens=completion.input_tokens,
            llm_output_tokens=completion.output_tokens,
            llm_latency_ms=round(completion.latency_ms, 1),
        )
        self._record(
            route,
            "ok",
            perf_counter() - started,
            completion.input_tokens,
            completion.output_tokens,
        )
        return GeneratedDocument.of(plan, completion)

    def _gateway(self, route: Route, client: Callable[[], LlmGateway] | None) -> LlmGateway:
        if route is Route.CLIENT:
            if client is None:
                raise SamplingUnavailable("There is no MCP client to sample from")
            return client()
        if self.server is None:
            raise LlmNotConfigured("No server-side LLM is configured")
        return self.server

    def _record(
        self,
        route: Route,
        outcome: Outcome,
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        if route is Route.CLIENT:
            provider, model = client_sampling.PROVIDER, CLIENT_MODEL_LABEL
        else:
            # The configured name, not the upstream's answer: labels stay a closed set.
            provider, model = openai_compatible.PROVIDER, self._server_model or "unknown"
        self._metrics.llm_request(provider, model, outcome, seconds, input_tokens, output_tokens)
