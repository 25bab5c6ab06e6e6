"""Generation: a catalog prompt, rendered, turned into a finished document by an LLM.

``DocumentGenerator`` is the one place that picks the LLM (``CTXFY_LLM_MODE``,
``choose_route``), calls it through the ``LlmGateway`` port, and records the call in metrics,
on the request's access line and, through the ``GenerationRecorder``, as a generation record
(success or failure) its owner can read back. REST and the MCP tools differ only in whether a
client LLM exists. Failures are ``LlmError`` leaves, each with its ``code``; every surface picks its
own status for them.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter

import anyio
import structlog
from pydantic import BaseModel, Field

from app.services.access_line import AccessLine
from app.services.generation_records import GenerationRecorder
from domain.errors import PromptRenderError
from domain.generation import ClientSampling, LlmMode, Route, choose_route
from domain.generation_records import GenerationOutcome, GenerationRecord
from domain.llm import (
    LlmCompletion,
    LlmError,
    LlmGateway,
    LlmMessage,
    LlmNotConfigured,
    LlmRequest,
    SamplingUnavailable,
)
from domain.prompts import GenerationSettings, RenderedPrompt, Scalar
from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.metrics import Metrics, Outcome

logger = structlog.get_logger(__name__)

# The metrics label for models a client picks: their names are the client's to choose,
# so they go on the log line, never into a label.
CLIENT_MODEL_LABEL = "client"
# ``llm_error`` of a generation stopped before its LLM answered; a caller that knows why
# (a REST client that disconnected) writes its own, more specific, code over it.
CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class LlmLabels:
    """The metric labels of each route's LLM: fixed by configuration, never by a client."""

    server_provider: str
    server_model: str
    client_provider: str


class GeneratedDocument(BaseModel):
    """A generated document with how it was made: the REST body and the MCP tool result."""

    prompt: str = Field(examples=["context_stack"])
    version: str = Field(examples=["1.0.0"], description="The prompt version that was rendered.")
    deprecated: bool = Field(
        False, description="Whether that version is deprecated (still served when pinned)."
    )
    document: str = Field(description="The finished document, as the LLM wrote it.")
    route: Route = Field(
        description="Whose LLM wrote it: the MCP client's own (sampling) or the server's."
    )
    provider: str = Field(examples=["openai-compatible"])
    model: str = Field(description="The model that answered, as its provider named it.")
    input_tokens: int | None = Field(description="Prompt tokens, when the provider says.")
    output_tokens: int | None = Field(description="Completion tokens, when the provider says.")
    latency_ms: float = Field(description="How long the LLM took.")
    generation_id: str | None = Field(
        None,
        description="The id of this generation's record (`GET /v1/generations/{id}`, MCP "
        "`ctxfy://generations/{id}`); null when records are off or could not be written.",
        examples=["gen_01KBD3M2Z8Q4V7W9X0Y1Z2A3B4"],
    )

    @classmethod
    def of(cls, plan: "Plan", completion: LlmCompletion) -> "GeneratedDocument":
        """What ``plan`` produced when its LLM answered ``completion``."""
        return cls(
            prompt=plan.prompt,
            version=plan.version,
            deprecated=plan.deprecated,
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
    version: str = ""
    deprecated: bool = False
    # For the record: the validated arguments, and who asked (from the access line).
    arguments: Mapping[str, Scalar | None] = field(default_factory=dict)
    requester: AccessLine = field(default_factory=AccessLine)


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


class DocumentGenerator:
    """Turns catalog prompts into documents with the LLM the policy picks."""

    def __init__(
        self,
        *,
        mode: LlmMode,
        server: LlmGateway | None,
        labels: LlmLabels,
        metrics: Metrics,
        recorder: GenerationRecorder | None = None,
    ) -> None:
        self._mode = mode
        self._server = server
        self._labels = labels
        self._metrics = metrics
        self._recorder = recorder

    def plan(
        self,
        entry: CatalogEntry,
        values: Mapping[str, Scalar | None],
        sampling: ClientSampling,
        *,
        line: AccessLine | None = None,
    ) -> Plan:
        """Pick the LLM and render what it will be asked; nothing is sent yet.

        Args:
            values: arguments ``entry.validate`` accepted.
            sampling: whether the caller can lend its LLM (REST: ``NO_CLIENT``).
            line: the request's access line; the route, or a refusal's code, is added to it.

        Raises:
            LlmNotConfigured, SamplingUnavailable: no LLM may serve this request.
            PromptRenderError: the prompt renders to nothing an LLM could be asked.
        """
        line = line if line is not None else AccessLine()
        settings = entry.definition.generation
        try:
            if settings is None:
                raise LlmNotConfigured(f"Prompt {entry.name!r} does not generate documents")
            route = choose_route(self._mode, sampling, server_configured=self._server is not None)
        except LlmError as exc:
            line.llm_error = exc.code
            raise
        line.llm_route = route.value
        line.prompt_served(entry.definition)
        return Plan(
            entry.name,
            route,
            llm_request(entry.render_validated(values), settings),
            version=entry.version,
            deprecated=entry.definition.deprecated,
            arguments=values,
            requester=line,
        )

    async def prepare(
        self,
        entry: CatalogEntry,
        values: Mapping[str, Scalar | None],
        sampling: ClientSampling,
        *,
        line: AccessLine | None = None,
    ) -> Plan:
        """``plan``, and a record of the generation when no LLM may serve it.

        Raises:
            the errors of ``plan``, once the refusal is recorded.
        """
        line = line if line is not None else AccessLine()
        try:
            return self.plan(entry, values, sampling, line=line)
        except (LlmError, PromptRenderError) as exc:
            await self._keep(
                entry.name,
                entry.version,
                values,
                line,
                outcome=GenerationOutcome.ERROR,
                failure=exc.code,
            )
            raise

    async def generate(
        self,
        plan: Plan,
        *,
        client: Callable[[], LlmGateway] | None = None,
        line: AccessLine | None = None,
    ) -> GeneratedDocument:
        """Have the planned LLM write the document.

        Args:
            client: builds the client-sampling gateway; required for ``Route.CLIENT``.
            line: the request's access line; the LLM's part is added to it.

        Raises:
            LlmError: a leaf naming what failed (its ``code``).
        """
        route = plan.route
        gateway = self._gateway(route, client)
        line = line if line is not None else AccessLine()
        started = perf_counter()
        try:
            completion = await gateway.complete(plan.request)
        except LlmError as exc:
            line.llm_error = exc.code
            seconds = perf_counter() - started
            self._count(route, "error", seconds, None, None)
            logger.warning(
                "generation_failed",
                prompt=plan.prompt,
                prompt_version=plan.version,
                route=route.value,
                error=exc.code,
            )
            await self._keep_planned(plan, GenerationOutcome.ERROR, exc.code, seconds)
            raise
        except anyio.get_cancelled_exc_class():
            line.llm_error = CANCELLED
            seconds = perf_counter() - started
            self._count(route, "cancelled", seconds, None, None)
            logger.info(
                "generation_cancelled",
                prompt=plan.prompt,
                prompt_version=plan.version,
                route=route.value,
            )
            # The caller has gone, but the record of what it cost must still be written.
            with anyio.CancelScope(shield=True):
                await self._keep_planned(plan, GenerationOutcome.CANCELLED, CANCELLED, seconds)
            raise
        line.llm = completion
        self._count(
            route,
            "ok",
            perf_counter() - started,
            completion.input_tokens,
            completion.output_tokens,
        )
        document = GeneratedDocument.of(plan, completion)
        document.generation_id = await self._keep_planned(
            plan, GenerationOutcome.OK, None, completion.latency_ms / 1000, completion, document
        )
        return document

    async def _keep_planned(
        self,
        plan: Plan,
        outcome: GenerationOutcome,
        failure: str | None,
        seconds: float,
        completion: LlmCompletion | None = None,
        document: GeneratedDocument | None = None,
    ) -> str | None:
        provider, model = self._who_answers(plan.route)
        return await self._keep(
            plan.prompt,
            plan.version,
            plan.arguments,
            plan.requester,
            outcome=outcome,
            failure=failure,
            route=plan.route,
            provider=completion.provider if completion else provider,
            model=completion.model if completion else model,
            input_tokens=completion.input_tokens if completion else None,
            output_tokens=completion.output_tokens if completion else None,
            latency_ms=round(seconds * 1000, 1),
            document=document.document if document else None,
        )

    async def _keep(
        self,
        prompt: str,
        version: str,
        arguments: Mapping[str, Scalar | None],
        requester: AccessLine,
        *,
        outcome: GenerationOutcome,
        failure: str | None,
        route: Route | None = None,
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        latency_ms: float | None = None,
        document: str | None = None,
    ) -> str | None:
        """Write the generation's record; its id if it was written."""
        recorder = self._recorder
        if recorder is None or not recorder.enabled:
            return None
        record = GenerationRecord(
            record_id=recorder.new_id(),
            created_at=recorder.now(),
            request_id=requester.request_id,
            key_id=requester.key_id,
            user_id=requester.user_id,
            prompt=prompt,
            prompt_version=version,
            route=route,
            provider=provider,
            model=model,
            outcome=outcome,
            failure=failure,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_ms=latency_ms,
            arguments=dict(arguments),
            document=document,
        )
        written = await recorder.keep(record)
        return record.record_id if written else None

    def _who_answers(self, route: Route) -> tuple[str, str | None]:
        """The provider a route goes to, and the model when the operator configured it."""
        if route is Route.CLIENT:
            return self._labels.client_provider, None
        return self._labels.server_provider, self._labels.server_model

    def _gateway(self, route: Route, client: Callable[[], LlmGateway] | None) -> LlmGateway:
        if route is Route.CLIENT:
            if client is None:
                raise SamplingUnavailable("There is no MCP client to sample from")
            return client()
        if self._server is None:
            raise LlmNotConfigured("No server-side LLM is configured")
        return self._server

    def _count(
        self,
        route: Route,
        outcome: Outcome,
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        labels = self._labels
        if route is Route.CLIENT:
            provider, model = labels.client_provider, CLIENT_MODEL_LABEL
        else:
            # The configured name, not the upstream's answer: labels stay a closed set.
            provider, model = labels.server_provider, labels.server_model
        self._metrics.llm_request(provider, model, outcome, seconds, input_tokens, output_tokens)
