"""Typed preview and generate operations: one per version of every prompt, each taking that
version's own argument model as its body, so OpenAPI documents every version."""

import inspect
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from app.http.deps import Generator
from app.http.disconnect import unless_disconnected
from app.http.errors import WITH_BODY, ClientDisconnected, failure_summary, responses
from app.http.request_context import access_line
from app.http.routes.generations import EXAMPLE_ID, location_of
from app.http.routes.prompt_views import PreviewResponse, preview_response
from app.http.security import InsufficientScope, require_scope
from app.services.generation import GeneratedDocument
from domain.errors import InvalidArguments, PromptNotFound, PromptRenderError
from domain.generation import ClientSampling
from domain.keys import Scope
from domain.llm import LlmError, SamplingError
from domain.prompts import VERSION_PATTERN
from infrastructure.catalog.arguments import model_name
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog

# REST generation uses the server's LLM only: sampling failures are MCP's.
LLM_FAILURES = failure_summary(LlmError, exclude=(SamplingError,))

# On preview and generate, each version documents its own operation (its body is that
# version's arguments), so ``?version=`` is checked there but kept out of the schema: under
# one operation it would promise one body for every version.
QueryVersion = Annotated[
    str | None, Query(pattern=VERSION_PATTERN.pattern, include_in_schema=False)
]
PIN_BY_QUERY = (
    "\n\nAnother version is served at its own path (`{name}@VERSION/{action}`), with that "
    "version's arguments as the body; `?version=VERSION` here does the same."
)

type Handler[R] = Callable[..., Coroutine[Any, Any, R]]

# Merged by FastAPI into the 200 response it documents from ``GeneratedDocument``.
GENERATED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The document, and how it was made.",
        "headers": {
            "Location": {
                "description": "The generation's record (`GET /v1/generations/{id}`); sent "
                "when a record was written (`generation_id` is not null).",
                "schema": {"type": "string", "examples": ["/v1/generations/" + EXAMPLE_ID]},
            }
        },
    }
}


def _body_model(entry: CatalogEntry, *, current: bool) -> type[BaseModel]:
    """The argument model as OpenAPI names it: the current version keeps the prompt's schema
    name, every other version's carries its number, so two versions never share a name."""
    if current:
        return entry.argument_model
    name = f"{model_name(entry.definition)}V{_underscored(entry.version)}"
    # A subclass: the same fields, validators and example, under a schema name of its own.
    namespace = {
        "__module__": __name__,
        "__doc__": f"Arguments of version {entry.version} of the {entry.name!r} prompt.",
        "model_config": ConfigDict(title=name),
    }
    model: type[BaseModel] = type(name, (entry.argument_model,), namespace)
    return model


def _underscored(version: str) -> str:
    return version.replace(".", "_")


def _with_body[R](
    handler: Handler[R],
    entry: CatalogEntry,
    returns: type[R],
    *,
    model: type[BaseModel],
) -> Handler[R]:
    """Give ``handler`` a body parameter typed by ``model`` (``entry``'s arguments), with the
    prompt's example."""
    example = entry.definition.example_arguments
    body = Body(openapi_examples={"example": {"summary": entry.definition.title, "value": example}})
    parameters = [
        inspect.Parameter(
            "arguments",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[model, body],
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


def _preview_endpoint(entry: CatalogEntry, model: type[BaseModel]) -> Handler[Response]:
    """A preview handler whose body is this version's own argument model.

    It answers with the ``PreviewResponse`` (the route's ``response_model``, which documents
    it) serialised already: built and validated here, FastAPI would validate and serialise
    it a second time.
    """

    async def preview(arguments: BaseModel, request: Request) -> Response:
        line = access_line(request.scope)
        if line is not None:
            line.prompt_served(entry.definition)
        answer = preview_response(entry.render_validated(arguments.model_dump()))
        return Response(answer.model_dump_json(), media_type="application/json")

    return _with_body(preview, entry, Response, model=model)


def _generate_endpoint(entry: CatalogEntry, model: type[BaseModel]) -> Handler[GeneratedDocument]:
    """A generate handler whose body is this version's own argument model."""

    async def generate(
        arguments: BaseModel, request: Request, response: Response, generator: Generator
    ) -> GeneratedDocument:
        line = access_line(request.scope)
        # REST has no MCP client to lend an LLM: the server's, or a clear 503.
        plan = await generator.prepare(
            entry, arguments.model_dump(), ClientSampling.NO_CLIENT, line=line
        )
        try:
            # Nobody would read a document whose caller has gone: stop spending on it.
            document = await unless_disconnected(
                request.receive, lambda: generator.generate(plan, line=line)
            )
        except ClientDisconnected as gone:
            if line is not None:
                line.llm_error = gone.code
            raise
        # 200, not 201: the document itself is the answer, in the body; the record is a
        # by-product, named by ``Location``. 201 would be defensible, but clients check 200.
        if document.generation_id is not None:
            response.headers["Location"] = location_of(document.generation_id)
        return document

    return _with_body(generate, entry, GeneratedDocument, model=model)


async def _query_pin(version: QueryVersion = None) -> None:
    """The unpinned path's ``?version=``: a malformed value is a 422; a well-formed one never
    arrives here, as ``VersionQueryMiddleware`` sends it to the pinned path."""


def _agreeing_pin(entry: CatalogEntry, catalog: PromptCatalog) -> Callable[..., Any]:
    """A pinned path's check that ``?version=``, if given, names the same version."""

    async def agrees(version: QueryVersion = None) -> None:
        if version is not None and version != entry.version:
            catalog.resolve(entry.definition.reference, version)  # raises: two different pins

    return agrees


def add_operations(router: APIRouter, catalog: PromptCatalog) -> None:
    """Preview (and generate) routes of every version: ``/{name}/…`` for the current one,
    ``/{name}@{version}/…`` for each (in OpenAPI unless it is the current one)."""
    for entry in catalog.entries():
        definition = entry.definition
        is_current = catalog.get(entry.name) is entry
        model = _body_model(entry, current=is_current)
        paths = [(f"/{definition.reference}", False, is_current)]
        if is_current:
            paths.insert(0, (f"/{definition.name}", True, False))
        for path, unpinned, hidden in paths:
            suffix = "" if unpinned else f"_v{_underscored(entry.version)}"
            pin = [Depends(_query_pin) if unpinned else Depends(_agreeing_pin(entry, catalog))]
            label = definition.title if unpinned else f"{definition.title} ({entry.version})"
            more = PIN_BY_QUERY if unpinned else ""
            router.add_api_route(
                f"{path}/preview",
                _preview_endpoint(entry, model),
                methods=["POST"],
                operation_id=f"preview_{definition.name}{suffix}",
                summary=f"Preview: {label}",
                description=f"{definition.description}\n\nRenders version {entry.version}'s "
                "messages without calling any LLM; the result equals MCP `prompts/get`."
                + more.format(name=definition.name, action="preview"),
                response_model=PreviewResponse,
                responses=responses(
                    *WITH_BODY, PromptNotFound, InvalidArguments, PromptRenderError
                ),
                dependencies=pin,
                deprecated=definition.deprecated or None,
                include_in_schema=not hidden,
            )
            if definition.generation is None:
                continue
            router.add_api_route(
                f"{path}/generate",
                _generate_endpoint(entry, model),
                methods=["POST"],
                operation_id=f"generate_{definition.name}{suffix}",
                summary=f"Generate: {label}",
                description=f"{definition.description}\n\nWrites the finished document "
                f"from version {entry.version} with the server-side LLM "
                "(`CTXFY_LLM_BASE_URL`), from the same arguments as the preview. Needs the "
                f"`write` scope. LLM failures are typed: {LLM_FAILURES}. A client that "
                "closes its connection before the answer cancels the generation. The "
                "generation's record is at `Location` (`GET /v1/generations/{id}`)."
                + more.format(name=definition.name, action="generate"),
                response_model=GeneratedDocument,
                responses=GENERATED
                | responses(
                    *WITH_BODY,
                    InsufficientScope,
                    PromptNotFound,
                    InvalidArguments,
                    PromptRenderError,
                    LlmError,
                    exclude=(SamplingError,),
                ),
                dependencies=[Depends(require_scope(Scope.WRITE)), *pin],
                deprecated=definition.deprecated or None,
                include_in_schema=not hidden,
            )
