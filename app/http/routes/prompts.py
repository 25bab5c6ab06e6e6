"""REST prompt endpoints: list, describe, and one typed preview operation per prompt."""

import inspect
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from app.http.deps import Catalog, Generator
from app.http.disconnect import unless_disconnected
from app.http.errors import SECURED, WITH_BODY, ClientDisconnected, failure_summary, responses
from app.http.request_context import access_line
from app.http.security import InsufficientScope, require_scope
from app.services.generation import GeneratedDocument
from domain.errors import InvalidArguments, PromptNotFound, PromptRenderError
from domain.generation import ClientSampling
from domain.keys import Scope
from domain.llm import LlmError, SamplingError
from domain.prompts import PromptArgument, PromptDefinition, RenderedPrompt, Scalar
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog

TAG = "prompts"
# REST generation uses the server's LLM only: sampling failures are MCP's.
LLM_FAILURES = failure_summary(LlmError, exclude=(SamplingError,))


class ArgumentOut(BaseModel):
    """A prompt argument as clients see it."""

    name: str
    type: str = Field(examples=["string"])
    description: str
    required: bool
    default: Scalar | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] = Field(default_factory=list)


class GenerationOut(BaseModel):
    """Generation settings of a prompt that produces documents."""

    max_tokens: int
    temperature: float | None


class PromptSummary(BaseModel):
    """A prompt in the catalog listing."""

    name: str = Field(examples=["context_stack"])
    title: str
    description: str
    version: str = Field(examples=["1.0.0"])
    tags: list[str]
    arguments: list[ArgumentOut]
    generation: GenerationOut | None = Field(
        None, description="Present when the prompt can generate a finished document."
    )


class PromptDetail(PromptSummary):
    """One prompt with its argument schema and worked example."""

    arguments_schema: dict[str, Any] = Field(description="JSON Schema of the arguments object.")
    example: dict[str, Scalar] = Field(description="A worked example argument set.")


class PromptList(BaseModel):
    """The whole catalog."""

    prompts: list[PromptSummary]
    count: int


class TextContent(BaseModel):
    """Text content of a message, as in MCP."""

    type: Literal["text"] = "text"
    text: str


class MessageOut(BaseModel):
    """One rendered message, as in MCP's `prompts/get`."""

    role: Literal["user", "assistant"]
    content: TextContent


class PreviewResponse(BaseModel):
    """A rendered prompt: the same messages `prompts/get` returns over MCP."""

    prompt: str
    description: str
    messages: list[MessageOut]


def _argument_out(argument: PromptArgument) -> ArgumentOut:
    return ArgumentOut(
        name=argument.name,
        type=argument.type.value,
        description=argument.description,
        required=argument.required,
        default=argument.default,
        max_length=argument.effective_max_length,
        minimum=argument.minimum,
        maximum=argument.maximum,
        choices=list(argument.choices),
    )


def _summary_fields(definition: PromptDefinition) -> dict[str, Any]:
    generation = definition.generation
    return {
        "name": definition.name,
        "title": definition.title,
        "description": definition.description,
        "version": definition.version,
        "tags": list(definition.tags),
        "arguments": [_argument_out(a) for a in definition.arguments],
        "generation": GenerationOut(
            max_tokens=generation.max_tokens, temperature=generation.temperature
        )
        if generation
        else None,
    }


def preview_response(rendered: RenderedPrompt) -> PreviewResponse:
    """The REST shape of a rendered prompt."""
    return PreviewResponse(
        prompt=rendered.name,
        description=rendered.description,
        messages=[
            MessageOut(role=m.role, content=TextContent(text=m.text)) for m in rendered.messages
        ],
    )


def _preview_endpoint(
    entry: CatalogEntry,
) -> Callable[..., Coroutine[Any, Any, PreviewResponse]]:
    """A preview handler whose body is the prompt's own argument model."""

    async def preview(arguments: BaseModel) -> PreviewResponse:
        return preview_response(entry.render_validated(arguments.model_dump()))

    return _with_body(preview, entry, PreviewResponse)


def _with_body[R](
    handler: Callable[..., Coroutine[Any, Any, R]], entry: CatalogEntry, returns: type[R]
) -> Callable[..., Coroutine[Any, Any, R]]:
    """Give ``handler`` a body parameter typed by ``entry``'s argument model, with its example."""
    example = entry.definition.example_arguments
    body = Body(openapi_examples={"example": {"summary": entry.definition.title, "value": example}})
    parameters = [
        inspect.Parameter(
            "arguments",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[entry.argument_model, body],
        ),
        *(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
            for name, annotation in inspect.get_annotations(handler).items()
            if name not in ("arguments", "return")
        ),
    ]
    handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # FastAPI reads __signature__
        parameters, return_annotation=returns
    )
    return handler


def _generate_endpoint(
    entry: CatalogEntry,
) -> Callable[..., Coroutine[Any, Any, GeneratedDocument]]:
    """A generate handler whose body is the prompt's own argument model."""

    async def generate(
        arguments: BaseModel, request: Request, generator: Generator
    ) -> GeneratedDocument:
        line = access_line(request.scope)
        # REST has no MCP client to lend an LLM: the server's, or a clear 503.
        plan = generator.plan(entry, arguments.model_dump(), ClientSampling.NO_CLIENT, line=line)
        try:
            # Nobody would read a document whose caller has gone: stop spending on it.
            return await unless_disconnected(
                request.receive, lambda: generator.generate(plan, line=line)
            )
        except ClientDisconnected as gone:
            if line is not None:
                line.llm_error = gone.code
            raise

    return _with_body(generate, entry, GeneratedDocument)


def build_router(catalog: PromptCatalog) -> APIRouter:
    """Prompt routes for ``catalog``; each prompt gets a documented preview operation."""
    router = APIRouter(
        prefix="/v1/prompts",
        tags=[TAG],
        dependencies=[Depends(require_scope(Scope.READ))],
        responses=responses(*SECURED),
    )

    @router.get("", operation_id="list_prompts", summary="List prompts")
    async def list_prompts(catalog: Catalog) -> PromptList:
        prompts = [PromptSummary(**_summary_fields(e.definition)) for e in catalog]
        return PromptList(prompts=prompts, count=len(prompts))

    @router.get(
        "/{name}",
        operation_id="get_prompt",
        summary="Describe a prompt",
        responses=responses(PromptNotFound),
    )
    async def get_prompt(name: str, catalog: Catalog) -> PromptDetail:
        entry = catalog.get(name)
        return PromptDetail(
            **_summary_fields(entry.definition),
            arguments_schema=entry.argument_model.model_json_schema(),
            example=entry.definition.example_arguments,
        )

    for entry in catalog:
        definition = entry.definition
        router.add_api_route(
            f"/{definition.name}/preview",
            _preview_endpoint(entry),
            methods=["POST"],
            operation_id=f"preview_{definition.name}",
            summary=f"Preview: {definition.title}",
            description=f"{definition.description}\n\nRenders the prompt's messages "
            "without calling any LLM; the result equals MCP `prompts/get`.",
            response_model=PreviewResponse,
            responses=responses(*WITH_BODY, InvalidArguments, PromptRenderError),
        )

        if definition.generation is None:
            continue
        router.add_api_route(
            f"/{definition.name}/generate",
            _generate_endpoint(entry),
            methods=["POST"],
            operation_id=f"generate_{definition.name}",
            summary=f"Generate: {definition.title}",
            description=f"{definition.description}\n\nWrites the finished document with "
            "the server-side LLM (`CTXFY_LLM_BASE_URL`), from the same arguments as the "
            f"preview. Needs the `write` scope. LLM failures are typed: {LLM_FAILURES}. "
            "A client that closes its connection before the answer cancels the generation.",
            response_model=GeneratedDocument,
            responses=responses(
                *WITH_BODY,
                InsufficientScope,
                InvalidArguments,
                PromptRenderError,
                LlmError,
                exclude=(SamplingError,),
            ),
            dependencies=[Depends(require_scope(Scope.WRITE))],
        )

    @router.post("/{name}/preview", include_in_schema=False)
    async def preview_unknown(name: str) -> None:
        # Every catalog prompt has its own route above; only unknown names reach this one.
        raise PromptNotFound(name)

    @router.post(
        "/{name}/generate",
        include_in_schema=False,
        dependencies=[Depends(require_scope(Scope.WRITE))],
    )
    async def generate_unknown(name: str, catalog: Catalog) -> None:
        # Prompts that generate have their own route above; the rest answer 404.
        if name in catalog:
            raise HTTPException(
                404, f"Prompt {name!r} does not generate documents; preview it instead."
            )
        raise PromptNotFound(name)

    return router
