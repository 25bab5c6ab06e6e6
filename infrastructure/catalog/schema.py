"""The YAML prompt-file format, validated field by field before it becomes domain objects.

One prompt per file (``*.yaml`` or ``*.yml``). The format is documented in
``docs/prompt-format.md``; unknown fields are errors so that typos never pass silently.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from domain.errors import CatalogError
from domain.llm import ModelPreferences
from domain.prompts import (
    ArgumentType,
    GenerationSettings,
    MessageTemplate,
    PromptArgument,
    PromptDefinition,
)

type FileScalar = StrictStr | StrictBool | StrictInt | StrictFloat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgumentFile(_Strict):
    """One entry of ``arguments:``."""

    name: StrictStr
    type: ArgumentType = ArgumentType.STRING
    description: StrictStr
    required: StrictBool = False
    default: FileScalar | None = None
    max_length: StrictInt | None = None
    minimum: StrictInt | StrictFloat | None = None
    maximum: StrictInt | StrictFloat | None = None
    choices: list[StrictStr] = Field(default_factory=list)
    suggestions: list[StrictStr] = Field(default_factory=list)

    def to_domain(self) -> PromptArgument:
        """The domain argument this entry declares."""
        return PromptArgument(
            name=self.name,
            type=self.type,
            description=self.description,
            required=self.required,
            default=self.default,
            max_length=self.max_length,
            minimum=self.minimum,
            maximum=self.maximum,
            choices=tuple(self.choices),
            suggestions=tuple(self.suggestions),
        )


class MessageFile(_Strict):
    """One entry of ``messages:``; ``content`` is a Jinja2 template."""

    role: Literal["user", "assistant"] = "user"
    content: StrictStr


type Priority = StrictInt | StrictFloat | None


class ModelPreferencesFile(_Strict):
    """``generation.model_preferences``: MCP sampling's advice on which model to use."""

    hints: list[StrictStr] = Field(default_factory=list)
    cost_priority: Priority = None
    speed_priority: Priority = None
    intelligence_priority: Priority = None

    def to_domain(self) -> ModelPreferences:
        """The domain value; raises ``CatalogError`` naming the field."""
        try:
            return ModelPreferences(
                hints=tuple(self.hints),
                cost_priority=self.cost_priority,
                speed_priority=self.speed_priority,
                intelligence_priority=self.intelligence_priority,
            )
        except ValueError as exc:
            raise CatalogError(str(exc), field="generation.model_preferences") from None


class GenerationFile(_Strict):
    """The optional ``generation:`` block that makes a prompt generate documents."""

    system_prompt: StrictStr
    max_tokens: StrictInt = 4096
    temperature: StrictInt | StrictFloat | None = None
    model_preferences: ModelPreferencesFile | None = None


class PromptFile(_Strict):
    """A whole prompt file."""

    name: StrictStr
    title: StrictStr
    description: StrictStr
    version: StrictStr
    tags: list[StrictStr] = Field(default_factory=list)
    arguments: list[ArgumentFile] = Field(default_factory=list)
    example: dict[str, FileScalar] = Field(default_factory=dict)
    messages: Annotated[list[MessageFile], Field(min_length=1)]
    generation: GenerationFile | None = None
    deprecated: StrictBool = False

    def to_domain(self) -> PromptDefinition:
        """The domain definition; raises ``CatalogError`` on a broken invariant."""
        generation = (
            GenerationSettings(
                system_prompt=self.generation.system_prompt,
                max_tokens=self.generation.max_tokens,
                temperature=self.generation.temperature,
                model_preferences=self.generation.model_preferences.to_domain()
                if self.generation.model_preferences
                else None,
            )
            if self.generation
            else None
        )
        return PromptDefinition(
            name=self.name,
            title=self.title,
            description=self.description,
            version=self.version,
            tags=tuple(self.tags),
            arguments=tuple(a.to_domain() for a in self.arguments),
            messages=tuple(MessageTemplate(role=m.role, template=m.content) for m in self.messages),
            example=tuple(self.example.items()),
            generation=generation,
            deprecated=self.deprecated,
        )
