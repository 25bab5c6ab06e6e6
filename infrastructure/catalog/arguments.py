"""One pydantic argument model per prompt, used by MCP, REST and OpenAPI alike."""

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from domain.errors import CatalogError, FieldError, InvalidArguments
from domain.prompts import ArgumentType, PromptArgument, PromptDefinition, Scalar
from domain.text import TEXT_PATTERN

_PYTHON_TYPES: dict[ArgumentType, Any] = {
    ArgumentType.STRING: str,
    ArgumentType.INTEGER: int,
    ArgumentType.NUMBER: float,
    ArgumentType.BOOLEAN: bool,
}


def model_name(definition: PromptDefinition) -> str:
    """The schema name of a prompt's argument model, e.g. ``ContextStackArguments``."""
    return "".join(part.capitalize() for part in definition.name.split("_")) + "Arguments"


def _annotation(argument: PromptArgument) -> Any:
    if argument.type is ArgumentType.ENUM:
        return Literal[argument.choices]
    return _PYTHON_TYPES[argument.type]


def _field(argument: PromptArgument) -> tuple[Any, Any]:
    annotation = _annotation(argument)
    constraints: dict[str, Any] = {"description": argument.description}
    if argument.type is ArgumentType.STRING:
        constraints["max_length"] = argument.effective_max_length
        constraints["pattern"] = TEXT_PATTERN
        if argument.required:
            constraints["min_length"] = 1
    if argument.type is ArgumentType.NUMBER:
        constraints["allow_inf_nan"] = False
    if argument.minimum is not None:
        constraints["ge"] = argument.minimum
    if argument.maximum is not None:
        constraints["le"] = argument.maximum
    if argument.required:
        return annotation, Field(..., **constraints)
    if argument.default is not None:
        return annotation, Field(argument.default, **constraints)
    return annotation | None, Field(None, **constraints)


def _whole_numbers(integers: frozenset[str]) -> Any:
    """A before-validator turning ``20.0`` into ``20`` for the integer arguments: JSON
    Schema's ``integer`` is any number without a fraction, and strict mode would refuse it."""

    def convert(cls: type[BaseModel], data: object) -> object:
        if not isinstance(data, dict):
            return data
        return {
            name: int(value)
            if name in integers and isinstance(value, float) and value.is_integer()
            else value
            for name, value in data.items()
        }

    return model_validator(mode="before")(classmethod(convert))  # type: ignore[arg-type]


def build_argument_model(definition: PromptDefinition) -> type[BaseModel]:
    """Generate the argument model of ``definition``, with its example attached.

    Raises:
        CatalogError: an argument's name would shadow an attribute of pydantic's models.
    """
    for argument in definition.arguments:
        if hasattr(BaseModel, argument.name):
            raise CatalogError(
                f"argument name {argument.name!r} is reserved (it names a model attribute)",
                field=f"arguments.{argument.name}",
            )
    fields: dict[str, Any] = {a.name: _field(a) for a in definition.arguments}
    example: dict[str, Any] = definition.example_arguments
    config = ConfigDict(
        extra="forbid",
        frozen=True,
        # JSON bodies must carry the declared types (REST, OpenAPI); MCP's all-string
        # arguments are coerced by validating with strict=False in validate_arguments.
        strict=True,
        title=model_name(definition),
        json_schema_extra={"examples": [example]},
    )
    integers = frozenset(a.name for a in definition.arguments if a.type is ArgumentType.INTEGER)
    return create_model(
        model_name(definition),
        __config__=config,
        __validators__={"whole_numbers": _whole_numbers(integers)} if integers else None,
        __doc__=f"Arguments of the {definition.name!r} prompt.",
        **fields,
    )


def to_field_errors(error: ValidationError) -> tuple[FieldError, ...]:
    """Translate pydantic errors into domain field errors, one per failed argument."""
    return tuple(
        FieldError(
            field=".".join(str(part) for part in item["loc"]) or "arguments",
            message=item["msg"],
            type=item["type"],
        )
        for item in error.errors(include_url=False)
    )


def validate_arguments(
    prompt: str, model: type[BaseModel], raw: Mapping[str, object]
) -> dict[str, Scalar | None]:
    """Validate ``raw``, coercing strings to declared types as MCP's arguments need.

    Every declared argument is present in the result, defaults filled in.
    """
    try:
        validated = model.model_validate(raw, strict=False)
    except ValidationError as exc:
        raise InvalidArguments(prompt, to_field_errors(exc)) from None
    return validated.model_dump()
