"""The loaded prompt catalog: definitions with compiled templates and argument models."""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from jinja2 import Template
from pydantic import BaseModel

from domain.errors import CatalogError, PromptNotFound, PromptRenderError
from domain.prompts import (
    MAX_RENDERED_LENGTH,
    PromptDefinition,
    RenderedMessage,
    RenderedPrompt,
    Scalar,
)
from infrastructure.catalog.arguments import validate_arguments
from infrastructure.catalog.templates import render_template


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A prompt ready to serve."""

    definition: PromptDefinition
    templates: tuple[Template, ...]
    argument_model: type[BaseModel]
    source: str

    @property
    def name(self) -> str:
        """The prompt's name."""
        return self.definition.name

    def validate(self, raw: Mapping[str, object]) -> dict[str, Scalar | None]:
        """Validated arguments, defaults filled in; raises ``InvalidArguments``."""
        return validate_arguments(self.name, self.argument_model, raw)

    def render_validated(self, values: Mapping[str, Scalar | None]) -> RenderedPrompt:
        """Render arguments that ``validate`` already accepted."""
        messages = tuple(
            RenderedMessage(role=message.role, text=render_template(self.name, template, values))
            for message, template in zip(self.definition.messages, self.templates, strict=True)
        )
        if sum(len(m.text) for m in messages) > MAX_RENDERED_LENGTH:
            raise PromptRenderError(
                self.name, f"the rendered prompt is longer than {MAX_RENDERED_LENGTH} characters"
            )
        return RenderedPrompt(
            name=self.name, description=self.definition.description, messages=messages
        )

    def render(self, raw: Mapping[str, object]) -> RenderedPrompt:
        """Validate ``raw`` and render: the one renderer behind MCP and REST."""
        return self.render_validated(self.validate(raw))


class PromptCatalog:
    """Every prompt Ctxfy serves, by name, in a stable order."""

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        for entry in entries:
            existing = self._entries.get(entry.name)
            if existing is not None:
                raise CatalogError(
                    f"prompt name is already defined by {existing.source}",
                    source=entry.source,
                    prompt=entry.name,
                    field="name",
                )
            self._entries[entry.name] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> CatalogEntry:
        """The entry called ``name``; raises ``PromptNotFound``."""
        try:
            return self._entries[name]
        except KeyError:
            raise PromptNotFound(name) from None
