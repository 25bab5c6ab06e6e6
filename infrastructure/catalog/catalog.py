"""The loaded prompt catalog: definitions with compiled templates and argument models."""

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from jinja2 import Template
from pydantic import BaseModel

from domain.errors import CatalogError, PromptNotFound, PromptRenderError, PromptVersionNotFound
from domain.prompts import (
    MAX_RENDERED_LENGTH,
    VERSION_SEPARATOR,
    PromptDefinition,
    RenderedMessage,
    RenderedPrompt,
    Scalar,
    split_reference,
    version_key,
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
    # SHA-256 of the file the version was read from: the catalog's validator is built from it.
    digest: str = ""

    @property
    def name(self) -> str:
        """The prompt's name."""
        return self.definition.name

    @property
    def version(self) -> str:
        """The version of the prompt this entry is."""
        return self.definition.version

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
            name=self.name,
            description=self.definition.description,
            messages=messages,
            version=self.version,
            deprecated=self.definition.deprecated,
        )

    def render(self, raw: Mapping[str, object]) -> RenderedPrompt:
        """Validate ``raw`` and render: the one renderer behind MCP and REST."""
        return self.render_validated(self.validate(raw))


class PromptCatalog:
    """Every prompt Ctxfy serves, each in one or more immutable versions, in a stable order.

    Iterating yields each prompt once, in its current version: the newest that is not
    deprecated (the newest of all when every version is). ``resolve`` reaches any version.
    """

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        versions: dict[str, dict[str, CatalogEntry]] = {}
        for entry in entries:
            same_name = versions.setdefault(entry.name, {})
            existing = same_name.get(entry.version)
            if existing is not None:
                raise CatalogError(
                    f"version {entry.version} is already defined by {existing.source}",
                    source=entry.source,
                    prompt=entry.name,
                    version=entry.version,
                    field="version",
                )
            same_name[entry.version] = entry
        self._versions: dict[str, tuple[CatalogEntry, ...]] = {
            name: tuple(sorted(by_version.values(), key=_newest_first))
            for name, by_version in versions.items()
        }
        self._current: dict[str, CatalogEntry] = {
            name: next((e for e in entries if not e.definition.deprecated), entries[0])
            for name, entries in self._versions.items()
        }
        self._pinned: dict[str, CatalogEntry] = {
            entry.definition.reference: entry
            for entries in self._versions.values()
            for entry in entries
        }
        self.digest = _digest(self._pinned.values())

    def __len__(self) -> int:
        return len(self._current)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._current.values())

    def __contains__(self, name: object) -> bool:
        return name in self._current

    @property
    def version_count(self) -> int:
        """How many versions all prompts have together."""
        return len(self._pinned)

    def entries(self) -> Iterator[CatalogEntry]:
        """Every version of every prompt: prompts in order, newest version first."""
        for entries in self._versions.values():
            yield from entries

    def get(self, name: str) -> CatalogEntry:
        """The current version of ``name``; raises ``PromptNotFound``."""
        try:
            return self._current[name]
        except KeyError:
            raise PromptNotFound(name) from None

    def versions(self, name: str) -> tuple[CatalogEntry, ...]:
        """Every version of ``name``, newest first; raises ``PromptNotFound``."""
        try:
            return self._versions[name]
        except KeyError:
            raise PromptNotFound(name) from None

    def resolve(self, reference: str, version: str | None = None) -> CatalogEntry:
        """The entry ``reference`` names: ``name`` (current) or ``name@version`` (pinned).

        ``version``, when given, pins too; it must agree with a version in ``reference``.

        Raises:
            PromptNotFound: no prompt of that name.
            PromptVersionNotFound: the prompt has no such version (names those it has).
        """
        name, pinned = split_reference(reference)
        if version is not None and pinned is not None and version != pinned:
            raise PromptNotFound(
                name, f"{reference!r} is pinned to {pinned}, but version {version} was asked for"
            )
        pinned = pinned if pinned is not None else version
        if pinned is None:
            return self.get(name)
        entry = self._pinned.get(f"{name}{VERSION_SEPARATOR}{pinned}")
        if entry is None:
            raise PromptVersionNotFound(name, pinned, self._known(name))
        return entry

    def _known(self, name: str) -> tuple[str, ...]:
        return tuple(e.version for e in self.versions(name))


def _newest_first(entry: CatalogEntry) -> tuple[int, int, int]:
    major, minor, patch = version_key(entry.version)
    return -major, -minor, -patch


def _digest(entries: Iterable[CatalogEntry]) -> str:
    """A strong validator of the whole catalog: what every version is, not where it lives."""
    hashed = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: (e.name, version_key(e.version))):
        hashed.update(f"{entry.definition.reference}\0{entry.digest}\0".encode())
    return hashed.hexdigest()
