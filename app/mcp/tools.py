"""MCP generation tools: ``generate_<prompt>`` for every catalog prompt that generates.

Each tool takes its prompt's typed arguments (the same model and validation as
``prompts/get``) and, optionally, ``prompt_version`` to pin a version; it asks the LLM the
policy picks — the client's own through sampling, or the server's — and returns the
document with structured metadata, its version among them, and a ``resource_link`` to
the generation's record when one was written. Every tool needs ``write``.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import time
from typing import Any

import anyio
from fastmcp import Context
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AuthCheck, require_scopes
from fastmcp.server.dependencies import get_context
from fastmcp.tools import InputRequiredToolResult, Tool, ToolResult
from fastmcp.utilities.json_schema import dereference_refs
from mcp.types import ContentBlock, TextContent, ToolAnnotations
from pydantic import PrivateAttr

from app.mcp.arguments import request_line, validated
from app.mcp.generations import generation_link
from app.services.generation import DocumentGenerator, GeneratedDocument
from domain.errors import InvalidArguments, PromptRenderError, PromptVersionNotFound
from domain.generation import Route
from domain.keys import Scope
from domain.llm import LlmError, LlmGateway
from domain.prompts import VERSION_ARGUMENT
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog
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
MAX_VERSION_SHOWN = 32  # of a pin that names no version: client input, clipped
DESCRIPTIVE = frozenset({"title", "description", "examples", "default"})


def tool_error(error: LlmError | InvalidArguments | PromptRenderError) -> ToolError:
    """The tool error a client sees: ``<code>: <message>``.

    Logged by FastMCP at INFO only: the generator already logged LLM failures once, and
    invalid arguments are the client's to fix.
    """
    return ToolError(f"{error.code}: {error}", log_level=logging.INFO)


class GenerationTool(Tool):
    """Generates the finished document of one catalog prompt, in any version that generates."""

    _entry: CatalogEntry = PrivateAttr()
    _versions: dict[str, CatalogEntry] = PrivateAttr()
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
        versions: Sequence[CatalogEntry] = (),
        stateless: bool,
        sampling_timeout: float,
        heartbeat: float = HEARTBEAT_SECONDS,
        auth: AuthCheck | None = NEEDS_WRITE,
    ) -> "GenerationTool":
        """The tool for ``entry`` (the current version), which must have generation settings.

        ``versions``: every version a call may pin with ``prompt_version``, newest first
        (``entry`` alone by default). ``auth`` is the scope check; a server without HTTP
        identity (in-memory) passes None.
        """
        definition = entry.definition
        pinnable = tuple(versions) or (entry,)
        tool = cls(
            name=f"{TOOL_PREFIX}{definition.name}",
            title=f"Generate: {definition.title}",
            description=f"{definition.description}\n\nWrites the finished document with an "
            "LLM — the client's own through sampling when it offers it, otherwise the "
            "server's — from the same arguments as the prompt of the same name.",
            # Inlined: some clients cannot follow $ref (FastMCP would do it per list).
            parameters=dereference_refs(input_schema(entry, pinnable)),
            output_schema=dereference_refs(GeneratedDocument.model_json_schema()),
            annotations=ToolAnnotations(
                read_only_hint=True, idempotent_hint=False, open_world_hint=True
            ),
            tags={*definition.tags, "generation"},
            meta={
                "prompt": definition.name,
                "version": definition.version,
                "versions": [e.version for e in pinnable],
            },
            auth=auth,
        )
        tool._entry = entry
        tool._versions = {e.version: e for e in pinnable}
        tool._generator = generator
        tool._stateless = stateless
        tool._sampling_timeout = sampling_timeout
        tool._heartbeat = heartbeat
        return tool

    def served(self, arguments: Mapping[str, Any]) -> CatalogEntry | None:
        """The version a call with ``arguments`` generates: pinned, else the current one;
        None when the pin names no version this tool has."""
        pinned = arguments.get(VERSION_ARGUMENT)
        if pinned is None or pinned == "":  # forms send "" for a field left blank
            return self._entry
        return self._versions.get(pinned) if isinstance(pinned, str) else None

    def _resolve(self, arguments: Mapping[str, Any]) -> tuple[CatalogEntry, Mapping[str, Any]]:
        """The version to generate and the prompt's own arguments; raises ``ToolError``."""
        if VERSION_ARGUMENT not in arguments:
            return self._entry, arguments
        entry = self.served(arguments)
        if entry is None:
            raise self._no_such_version(arguments[VERSION_ARGUMENT])
        return entry, {k: v for k, v in arguments.items() if k != VERSION_ARGUMENT}

    def _no_such_version(self, pinned: object) -> ToolError:
        shown = str(pinned)[:MAX_VERSION_SHOWN]
        return ToolError(
            f"{PromptVersionNotFound.code}: prompt {self._entry.name!r} has no version "
            f"{shown!r} that generates documents; it has {', '.join(self._versions)}",
            log_level=logging.INFO,
        )

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        """Validate, pick the LLM, generate; failures are tool errors with a code."""
        entry, own = self._resolve(arguments)
        line = request_line()
        if line is not None:
            line.prompt_served(entry.definition)
        try:
            values = validated(entry, own)
        except InvalidArguments as exc:
            raise tool_error(exc) from None
        context = get_context()
        try:
            plan = await self._generator.prepare(
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
        content: list[ContentBlock] = [TextContent(type="text", text=document.document)]
        if document.generation_id is not None:
            content.append(generation_link(document.generation_id, document.prompt))
        return ToolResult(content=content, structured_content=document.model_dump(mode="json"))


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


def input_schema(current: CatalogEntry, versions: Sequence[CatalogEntry]) -> dict[str, Any]:
    """The tool's arguments: the current version's, and ``prompt_version`` to pin another.

    Nothing checks a call against this schema before the tool runs, which validates with
    the pinned version's own model. A client may check it first, though, so when another
    version takes other arguments the schema admits its calls too: only what every version
    requires is required, unknown names are allowed, and an argument typed differently
    elsewhere accepts any of its types.
    """
    schema = current.argument_model.model_json_schema()
    properties: dict[str, Any] = dict(schema.get("properties", {}))
    others = [e for e in versions if e is not current]
    if any(_signature(e) != _signature(current) for e in others):
        schema.pop("additionalProperties", None)
        required = set(schema.get("required", ()))
        variants = {name: [shape] for name, shape in properties.items()}
        for other in others:
            required &= {a.name for a in other.definition.arguments if a.required}
            for name, shape in other.argument_model.model_json_schema()["properties"].items():
                known = variants.get(name)
                if known is not None and all(_shape(shape) != _shape(v) for v in known):
                    known.append(shape)
        properties = {n: v[0] if len(v) == 1 else {"anyOf": v} for n, v in variants.items()}
        schema["required"] = [n for n in schema.get("required", ()) if n in required]
        if not schema["required"]:
            del schema["required"]
    properties[VERSION_ARGUMENT] = {
        "type": "string",
        "enum": [e.version for e in versions],
        "description": f"The version of the prompt to generate from; the current one "
        f"({current.version}) when left out. A pinned version takes its own arguments "
        f"(prompts/get {current.name}@<version> lists them).",
    }
    schema["properties"] = properties
    return schema


def _signature(entry: CatalogEntry) -> dict[str, Any]:
    """What a version accepts, without the words that describe it."""
    schema = entry.argument_model.model_json_schema()
    return {
        "required": sorted(schema.get("required", ())),
        "properties": {n: _shape(p) for n, p in schema.get("properties", {}).items()},
    }


def _shape(property_schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in property_schema.items() if k not in DESCRIPTIVE}


def generation_tools(
    catalog: PromptCatalog,
    generator: DocumentGenerator,
    *,
    stateless: bool,
    sampling_timeout: float,
) -> list[GenerationTool]:
    """One tool per prompt whose current version generates; it may pin any version that
    generates too."""
    return [
        GenerationTool.from_entry(
            entry,
            generator,
            versions=[v for v in catalog.versions(entry.name) if v.definition.generation],
            stateless=stateless,
            sampling_timeout=sampling_timeout,
        )
        for entry in catalog
        if entry.definition.generation is not None
    ]
