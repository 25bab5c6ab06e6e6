"""MCP generation tools: ``generate_<prompt>`` for every catalog prompt that generates.

Each tool takes its prompt's typed arguments (the same model and validation as
``prompts/get``), asks the LLM the policy picks — the client's own through sampling, or the
server's — and returns the document with structured metadata. Every tool needs ``write``.
"""

import logging
from collections.abc import Awaitable, Callable, Iterable
from time import time
from typing import Any

import anyio
from fastmcp import Context
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AuthCheck, require_scopes
from fastmcp.server.dependencies import get_context, get_http_request
from fastmcp.tools import InputRequiredToolResult, Tool, ToolResult
from mcp.types import TextContent, ToolAnnotations
from pydantic import PrivateAttr

from app.http.request_context import access_line
from app.mcp.arguments import validated
from app.services.access_line import AccessLine
from app.services.generation import DocumentGenerator, GeneratedDocument
from domain.errors import InvalidArguments, PromptRenderError
from domain.generation import Route
from domain.keys import Scope
from domain.llm import LlmError, LlmGateway
from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.llm.client_sampling import (
    AnsweredSamplingLlm,
    ClientSamplingLlm,
    client_answer,
    client_sampling,
    input_request,
    is_modern,
)

TOOL_PREFIX = "generate_"
NEEDS_WRITE = require_scopes(Scope.WRITE.value)  # generation spends LLM tokens
# How often a long generation tells a client that supplied a progress token it is alive,
# so clients that extend their timeout on progress keep waiting.
HEARTBEAT_SECONDS = 10.0


def tool_error(error: LlmError | InvalidArguments | PromptRenderError) -> ToolError:
    """The tool error a client sees: ``<code>: <message>``.

    Logged by FastMCP at INFO only: the generator already logged LLM failures once, and
    invalid arguments are the client's to fix.
    """
    return ToolError(f"{error.code}: {error}", log_level=logging.INFO)


class GenerationTool(Tool):
    """Generates the finished document of one catalog prompt."""

    _entry: CatalogEntry = PrivateAttr()
    _generator: DocumentGenerator = PrivateAttr()
    _stateless: bool = PrivateAttr()
    _sampling_timeout: float = PrivateAttr()
    _heartbeat: float = PrivateAttr()

    @classmethod
    def from_entry(
        cls,
        entry: CatalogEntry,
        generator: DocumentGenerator,
        *,
        stateless: bool,
        sampling_timeout: float,
        heartbeat: float = HEARTBEAT_SECONDS,
        auth: AuthCheck | None = NEEDS_WRITE,
    ) -> "GenerationTool":
        """The tool for ``entry``, which must have generation settings.

        ``auth`` is the scope check; a server without HTTP identity (in-memory) passes None.
        """
        definition = entry.definition
        tool = cls(
            name=f"{TOOL_PREFIX}{definition.name}",
            title=f"Generate: {definition.title}",
            description=f"{definition.description}\n\nWrites the finished document with an "
            "LLM — the client's own through sampling when it offers it, otherwise the "
            "server's — from the same arguments as the prompt of the same name.",
            parameters=entry.argument_model.model_json_schema(),
            output_schema=GeneratedDocument.model_json_schema(),
            annotations=ToolAnnotations(
                read_only_hint=True, idempotent_hint=False, open_world_hint=True
            ),
            tags={*definition.tags, "generation"},
            meta={"prompt": definition.name, "version": definition.version},
            auth=auth,
        )
        tool._entry = entry
        tool._generator = generator
        tool._stateless = stateless
        tool._sampling_timeout = sampling_timeout
        tool._heartbeat = heartbeat
        return tool

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        """Validate, pick the LLM, generate; failures are tool errors with a code."""
        entry = self._entry
        try:
            values = validated(entry, arguments)
        except InvalidArguments as exc:
            raise tool_error(exc) from None
        context = get_context()
        line = _access_line()
        try:
            plan = self._generator.plan(
                entry, values, client_sampling(context, stateless=self._stateless), line=line
            )
            client: Callable[[], LlmGateway]
            if plan.route is Route.CLIENT and is_modern(context):
                # 2026-07-28: no back-channel. Ask for the client's LLM in the answer; the
                # client calls again with what its LLM wrote.
                answer = client_answer(context)
                if answer is None:
                    return InputRequiredToolResult(input_request(plan.request, asked_at=time()))
                state = context.request_state

                def client() -> LlmGateway:
                    return AnsweredSamplingLlm(answer, state)
            else:

                def client() -> LlmGateway:
                    return ClientSamplingLlm(context, timeout=self._sampling_timeout)

            document = await _with_heartbeat(
                context,
                self._heartbeat,
                f"Asking the {plan.route.value}'s LLM",
                lambda: self._generator.generate(plan, client=client, line=line),
            )
        except (LlmError, PromptRenderError) as exc:
            raise tool_error(exc) from None
        return ToolResult(
            content=[TextContent(type="text", text=document.document)],
            structured_content=document.model_dump(mode="json"),
        )


def _access_line() -> AccessLine | None:
    """The access line of the HTTP request carrying this call, if there is one."""
    try:
        return access_line(get_http_request().scope)
    except RuntimeError:  # in-memory transport: no HTTP request
        return None


def _progress_token(context: Context) -> str | int | None:
    request = context.request_context
    meta = request.meta if request is not None else None
    token = meta.get("progressToken") if meta else None
    return token if isinstance(token, str | int) else None


async def _with_heartbeat[T](
    context: Context, interval: float, message: str, work: Callable[[], Awaitable[T]]
) -> T:
    """Run ``work``, sending progress notifications while it runs if the client asked.

    Progress rises 0 → 1: one notification at the start, one per ``interval`` while the LLM
    works (n/(n+1), since its duration is unknown), and 1 when the document is ready.
    """
    if _progress_token(context) is None:
        return await work()
    await context.report_progress(0, 1, message)
    async with anyio.create_task_group() as tasks:

        async def beat() -> None:
            beats = 0
            while True:
                await anyio.sleep(interval)
                beats += 1
                try:
                    await context.report_progress(
                        beats / (beats + 1), 1, f"Still generating ({beats * interval:g} s)"
                    )
                except Exception:  # a client gone away must not fail the generation itself
                    return

        tasks.start_soon(beat)
        outcome: T | LlmError
        try:
            outcome = await work()
        except LlmError as exc:
            outcome = exc  # raised from inside the group, it would arrive in an ExceptionGroup
        tasks.cancel_scope.cancel()
    if isinstance(outcome, LlmError):
        raise outcome
    await context.report_progress(1, 1, "Document ready")
    return outcome


def generation_tools(
    entries: Iterable[CatalogEntry],
    generator: DocumentGenerator,
    *,
    stateless: bool,
    sampling_timeout: float,
) -> list[GenerationTool]:
    """One tool per entry that declares generation settings."""
    return [
        GenerationTool.from_entry(
            entry, generator, stateless=stateless, sampling_timeout=sampling_timeout
        )
        for entry in entries
        if entry.definition.generation is not None
    ]
