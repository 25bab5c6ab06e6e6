"""What the REST prompt reads answer: response models, and each catalog's bodies serialised once."""

from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.http.etag import Representation, entity_tag
from domain.errors import PromptNotFound
from domain.prompts import PromptArgument, PromptDefinition, RenderedPrompt, Scalar
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog


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
    """A prompt in the catalog listing, in one version."""

    name: str = Field(examples=["context_stack"])
    title: str
    description: str
    version: str = Field(examples=["1.0.0"])
    deprecated: bool = Field(description="Still served when pinned; unpinned requests skip it.")
    versions: list[str] = Field(
        description="Every version of the prompt, newest first; pin one as `name@version`.",
        examples=[["1.1.0", "1.0.0"]],
    )
    tags: list[str]
    arguments: list[ArgumentOut]
    generation: GenerationOut | None = Field(
        None, description="Present when the prompt can generate a finished document."
    )


class PromptDetail(PromptSummary):
    """One version of a prompt with its argument schema and worked example."""

    current: bool = Field(description="Whether unpinned requests get this version.")
    arguments_schema: dict[str, Any] = Field(description="JSON Schema of the arguments object.")
    example: dict[str, Scalar] = Field(description="A worked example argument set.")


class PromptList(BaseModel):
    """The whole catalog: each prompt once, in its current version."""

    prompts: list[PromptSummary]
    count: int


class VersionOut(BaseModel):
    """One version of a prompt."""

    version: str = Field(examples=["1.0.0"])
    deprecated: bool
    current: bool = Field(description="Whether unpinned requests get this version.")
    title: str
    description: str
    arguments: list[ArgumentOut]
    generation: GenerationOut | None = Field(
        None, description="Present when this version can generate a finished document."
    )


class VersionList(BaseModel):
    """Every version of one prompt, newest first."""

    name: str = Field(examples=["context_stack"])
    current: str = Field(description="The version unpinned requests get.", examples=["1.0.0"])
    versions: list[VersionOut]
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
    version: str = Field(examples=["1.0.0"], description="The prompt version that was rendered.")
    deprecated: bool = Field(description="Whether that version is deprecated.")
    description: str
    messages: list[MessageOut]


def preview_response(rendered: RenderedPrompt) -> PreviewResponse:
    """The REST shape of a rendered prompt."""
    return PreviewResponse(
        prompt=rendered.name,
        version=rendered.version,
        deprecated=rendered.deprecated,
        description=rendered.description,
        messages=[
            MessageOut(role=m.role, content=TextContent(text=m.text)) for m in rendered.messages
        ],
    )


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


def _generation_out(definition: PromptDefinition) -> GenerationOut | None:
    generation = definition.generation
    if generation is None:
        return None
    return GenerationOut(max_tokens=generation.max_tokens, temperature=generation.temperature)


def _summary_fields(entry: CatalogEntry, catalog: PromptCatalog) -> dict[str, Any]:
    definition = entry.definition
    return {
        "name": definition.name,
        "title": definition.title,
        "description": definition.description,
        "version": definition.version,
        "deprecated": definition.deprecated,
        "versions": [e.version for e in catalog.versions(entry.name)],
        "tags": list(definition.tags),
        "arguments": [_argument_out(a) for a in definition.arguments],
        "generation": _generation_out(definition),
    }


def _detail(entry: CatalogEntry, catalog: PromptCatalog) -> PromptDetail:
    return PromptDetail(
        **_summary_fields(entry, catalog),
        current=catalog.get(entry.name) is entry,
        arguments_schema=entry.argument_model.model_json_schema(),
        example=entry.definition.example_arguments,
    )


def _versions(name: str, catalog: PromptCatalog) -> VersionList:
    current = catalog.get(name)
    versions = [
        VersionOut(
            version=e.version,
            deprecated=e.definition.deprecated,
            current=e is current,
            title=e.definition.title,
            description=e.definition.description,
            arguments=[_argument_out(a) for a in e.definition.arguments],
            generation=_generation_out(e.definition),
        )
        for e in catalog.versions(name)
    ]
    return VersionList(name=name, current=current.version, versions=versions, count=len(versions))


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


class CatalogViews:
    """The listing, every version's description and every prompt's versions, of one catalog:
    serialised once, each with a strong tag of the catalog's digest and what it shows.

    ``revision`` is what else the bytes depend on (the server's version), so a deploy that
    changes a body's shape changes its tag too.
    """

    def __init__(self, catalog: PromptCatalog, *, revision: str) -> None:
        tag = partial(entity_tag, revision, catalog.digest)
        summaries = [PromptSummary(**_summary_fields(e, catalog)) for e in catalog]
        self.listing = Representation(
            _json(PromptList(prompts=summaries, count=len(summaries))), tag("list")
        )
        self._details = {
            e.definition.reference: Representation(
                _json(_detail(e, catalog)), tag("prompt", e.definition.reference)
            )
            for e in catalog.entries()
        }
        self._versions = {
            e.name: Representation(_json(_versions(e.name, catalog)), tag("versions", e.name))
            for e in catalog
        }

    def detail(self, entry: CatalogEntry) -> Representation:
        """The description of ``entry``'s version."""
        return self._details[entry.definition.reference]

    def versions(self, name: str) -> Representation:
        """The versions of ``name``; raises ``PromptNotFound``."""
        try:
            return self._versions[name]
        except KeyError:
            raise PromptNotFound(name) from None
