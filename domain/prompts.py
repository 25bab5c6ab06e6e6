"""Prompt definitions: the catalog's value objects and their invariants."""

import re
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import CatalogError
from domain.llm import MAX_TOKENS_LIMIT, TEMPERATURE_MAX, ModelPreferences, Role

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# ASCII digits only (``\d`` would take any script's), no leading zeros, at most 9 digits.
VERSION_PATTERN = re.compile(r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$")
# A pinned reference names a version after the prompt: ``prp@1.2.0``.
VERSION_SEPARATOR = "@"
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# Pydantic reserves the model_ prefix; keeping argument names clear of it lets one
# argument model serve MCP, REST and OpenAPI without aliasing tricks in schemas.
RESERVED_ARGUMENT_PREFIX = "model_"
# A generation tool's own argument for pinning a version, so no prompt argument may take it.
VERSION_ARGUMENT = "prompt_version"

MAX_STRING_LENGTH = 100_000
DEFAULT_STRING_LENGTH = 20_000
# What one rendered prompt may come to, all messages together: several long arguments in a
# template that repeats them could otherwise make a request cost far more than its body.
MAX_RENDERED_LENGTH = 500_000
MAX_SUGGESTIONS = 100
MAX_SUGGESTION_LENGTH = 200

type Scalar = str | int | float | bool


class ArgumentType(StrEnum):
    """The value types a prompt argument may declare."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ENUM = "enum"


def version_key(version: str) -> tuple[int, int, int]:
    """The semver order of a ``MAJOR.MINOR.PATCH`` version (``1.10.0`` after ``1.9.0``)."""
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def is_version(text: str) -> bool:
    """Whether ``text`` is a ``MAJOR.MINOR.PATCH`` version as prompt files write them."""
    return VERSION_PATTERN.fullmatch(text) is not None


def split_reference(reference: str) -> tuple[str, str | None]:
    """``prp@1.2.0`` → ``("prp", "1.2.0")``; an unpinned ``prp`` → ``("prp", None)``.

    Nothing is checked here: a name or version that does not exist is the catalog's to report.
    """
    name, separator, version = reference.partition(VERSION_SEPARATOR)
    return (name, version) if separator else (name, None)


def _fail(message: str, field_name: str) -> CatalogError:
    return CatalogError(message, field=field_name)


def fits_type(argument_type: "ArgumentType", value: Scalar) -> bool:
    """Whether ``value`` is already of the declared type (no coercion: ``"3"`` is no integer)."""
    match argument_type:
        case ArgumentType.STRING | ArgumentType.ENUM:
            return isinstance(value, str)
        case ArgumentType.BOOLEAN:
            return isinstance(value, bool)
        case ArgumentType.INTEGER:
            return isinstance(value, int) and not isinstance(value, bool)
        case ArgumentType.NUMBER:
            return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptArgument:
    """One typed argument of a prompt.

    Structural invariants are checked here; whether a default or an example value
    fits the type is checked by the argument model built from this definition, so
    there is exactly one value validator.
    """

    name: str
    type: ArgumentType
    description: str
    required: bool = False
    default: Scalar | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # Values offered to clients that complete arguments; any string is still accepted.
    suggestions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"arguments.{self.name}"
        if not NAME_PATTERN.match(self.name):
            raise _fail("argument name must match ^[a-z][a-z0-9_]{0,47}$", "arguments.name")
        if self.name.startswith(RESERVED_ARGUMENT_PREFIX):
            raise _fail(f"argument names may not start with {RESERVED_ARGUMENT_PREFIX!r}", where)
        if self.name == VERSION_ARGUMENT:
            raise _fail(f"{VERSION_ARGUMENT!r} is reserved for pinning a version", where)
        if not self.description.strip():
            raise _fail("description must not be empty", f"{where}.description")
        if self.required and self.default is not None:
            raise _fail("a required argument cannot have a default", f"{where}.default")
        if self.default is not None and not fits_type(self.type, self.default):
            raise _fail(
                f"default must be of type {self.type.value}, not {self.default!r}",
                f"{where}.default",
            )
        if self.type is ArgumentType.ENUM:
            if not self.choices:
                raise _fail("an enum argument needs at least one choice", f"{where}.choices")
            if len(set(self.choices)) != len(self.choices):
                raise _fail("choices must be unique", f"{where}.choices")
        elif self.choices:
            raise _fail("only enum arguments take choices", f"{where}.choices")
        if self.max_length is not None:
            if self.type is not ArgumentType.STRING:
                raise _fail("only string arguments take max_length", f"{where}.max_length")
            if not 1 <= self.max_length <= MAX_STRING_LENGTH:
                raise _fail(
                    f"max_length must be between 1 and {MAX_STRING_LENGTH}",
                    f"{where}.max_length",
                )
        if self.suggestions:
            if self.type is not ArgumentType.STRING:
                raise _fail("only string arguments take suggestions", f"{where}.suggestions")
            if len(self.suggestions) > MAX_SUGGESTIONS:
                raise _fail(f"at most {MAX_SUGGESTIONS} suggestions", f"{where}.suggestions")
            if len(set(self.suggestions)) != len(self.suggestions):
                raise _fail("suggestions must be unique", f"{where}.suggestions")
            if any(not s.strip() or len(s) > MAX_SUGGESTION_LENGTH for s in self.suggestions):
                raise _fail(
                    f"a suggestion must be non-empty and at most {MAX_SUGGESTION_LENGTH} "
                    "characters",
                    f"{where}.suggestions",
                )
        numeric = self.type in (ArgumentType.INTEGER, ArgumentType.NUMBER)
        if (self.minimum is not None or self.maximum is not None) and not numeric:
            raise _fail("only integer and number arguments take minimum/maximum", where)
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise _fail("minimum must not exceed maximum", f"{where}.minimum")

    def completions(self, typed: str) -> tuple[str, ...]:
        """Values a client may offer for this argument, given what was typed so far.

        Choices of an enum, ``true``/``false`` for a boolean, a string's suggestions; those
        starting with ``typed`` (ignoring case) come first, then those merely containing it.
        """
        match self.type:
            case ArgumentType.ENUM:
                candidates = self.choices
            case ArgumentType.BOOLEAN:
                candidates = ("true", "false")
            case ArgumentType.STRING:
                candidates = self.suggestions
            case _:
                candidates = ()
        wanted = typed.casefold()
        starting = [c for c in candidates if c.casefold().startswith(wanted)]
        containing = [c for c in candidates if wanted in c.casefold() and c not in starting]
        return (*starting, *containing)

    @property
    def effective_max_length(self) -> int | None:
        """The length limit enforced for a string argument (every string has one)."""
        if self.type is not ArgumentType.STRING:
            return None
        return self.max_length if self.max_length is not None else DEFAULT_STRING_LENGTH


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageTemplate:
    """One message of a prompt: a role and its template source."""

    role: Role
    template: str

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise _fail("role must be 'user' or 'assistant'", "messages.role")
        if not self.template.strip():
            raise _fail("message template must not be empty", "messages.content")


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationSettings:
    """How a prompt is turned into a finished document by an LLM."""

    system_prompt: str
    max_tokens: int = 4096
    temperature: float | None = None
    model_preferences: ModelPreferences | None = None

    def __post_init__(self) -> None:
        if not self.system_prompt.strip():
            raise _fail("system_prompt must not be empty", "generation.system_prompt")
        if not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise _fail(
                f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}",
                "generation.max_tokens",
            )
        if self.temperature is not None and not 0.0 <= self.temperature <= TEMPERATURE_MAX:
            raise _fail(
                f"temperature must be between 0 and {TEMPERATURE_MAX:g}", "generation.temperature"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptDefinition:
    """A catalog prompt: metadata, typed arguments, message templates, an example."""

    name: str
    title: str
    description: str
    version: str
    tags: tuple[str, ...]
    arguments: tuple[PromptArgument, ...]
    messages: tuple[MessageTemplate, ...]
    example: tuple[tuple[str, Scalar], ...]
    generation: GenerationSettings | None = None
    # Still served when pinned, flagged in listings; unpinned requests skip it.
    deprecated: bool = False

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise _fail("name must match ^[a-z][a-z0-9_]{0,47}$", "name")
        for label, text in (("title", self.title), ("description", self.description)):
            if not text.strip():
                raise _fail(f"{label} must not be empty", label)
        if not is_version(self.version):
            raise _fail(
                "version must be MAJOR.MINOR.PATCH, numbers without leading zeros", "version"
            )
        for tag in self.tags:
            if not TAG_PATTERN.match(tag):
                raise _fail(f"tag {tag!r} must match ^[a-z0-9][a-z0-9-]{{0,31}}$", "tags")
        names = [argument.name for argument in self.arguments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise _fail(f"duplicate argument names: {', '.join(duplicates)}", "arguments")
        if not self.messages:
            raise _fail("a prompt needs at least one message", "messages")
        unknown = sorted({key for key, _ in self.example} - set(names))
        if unknown:
            raise _fail(f"example names unknown arguments: {', '.join(unknown)}", "example")
        for key, value in self.example:
            declared = self.argument(key)
            if declared is not None and not fits_type(declared.type, value):
                raise _fail(
                    f"example value must be of type {declared.type.value}, not {value!r}",
                    f"example.{key}",
                )
        missing = sorted(
            a.name for a in self.arguments if a.required and a.name not in dict(self.example)
        )
        if missing:
            raise _fail(
                f"example must give every required argument; missing: {', '.join(missing)}",
                "example",
            )

    @property
    def reference(self) -> str:
        """The pinned name of this version: ``name@version``."""
        return f"{self.name}{VERSION_SEPARATOR}{self.version}"

    @property
    def example_arguments(self) -> dict[str, Scalar]:
        """The worked example as a plain mapping."""
        return dict(self.example)

    def argument(self, name: str) -> PromptArgument | None:
        """The argument called ``name``, if the prompt declares one."""
        return next((a for a in self.arguments if a.name == name), None)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A message after its template was rendered with validated arguments."""

    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A prompt rendered with validated arguments: what `prompts/get` returns."""

    name: str
    description: str
    messages: tuple[RenderedMessage, ...]
    version: str = ""
    deprecated: bool = False

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("a rendered prompt has at least one message")
