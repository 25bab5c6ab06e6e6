"""Invariants of the prompt value objects in ``domain.prompts``."""

from dataclasses import FrozenInstanceError
from typing import Any, cast

import pytest

from domain.errors import CatalogError
from domain.llm import MAX_TOKENS_LIMIT, Role
from domain.prompts import (
    DEFAULT_STRING_LENGTH,
    MAX_STRING_LENGTH,
    ArgumentType,
    GenerationSettings,
    MessageTemplate,
    PromptArgument,
    PromptDefinition,
    RenderedMessage,
    RenderedPrompt,
    Scalar,
    fits_type,
    is_version,
    split_reference,
    version_key,
)


def argument(**changes: Any) -> PromptArgument:
    """A valid optional string argument with ``changes`` applied."""
    fields: dict[str, Any] = {"name": "topic", "type": ArgumentType.STRING, "description": "A."}
    return PromptArgument(**(fields | changes))


def definition(**changes: Any) -> PromptDefinition:
    """A valid minimal prompt with one required argument, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "name": "greet",
        "title": "Greet",
        "description": "Says hello.",
        "version": "1.0.0",
        "tags": ("demo",),
        "arguments": (argument(name="who", required=True),),
        "messages": (MessageTemplate(role="user", template="Hello, {{ who }}!"),),
        "example": (("who", "world"),),
    }
    return PromptDefinition(**(fields | changes))


def test_a_minimal_argument_is_valid() -> None:
    assert argument().name == "topic"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"name": "Topic"}, "arguments.name", id="uppercase-name"),
        pytest.param({"name": "1topic"}, "arguments.name", id="name-starts-with-digit"),
        pytest.param({"name": "t" * 49}, "arguments.name", id="name-too-long"),
        pytest.param({"name": "model_size"}, "arguments.model_size", id="reserved-prefix"),
        pytest.param({"name": "prompt_version"}, "arguments.prompt_version", id="reserved-name"),
        pytest.param({"description": "  "}, "arguments.topic.description", id="blank-description"),
        pytest.param(
            {"required": True, "default": "x"}, "arguments.topic.default", id="required-default"
        ),
        pytest.param({"type": ArgumentType.ENUM}, "arguments.topic.choices", id="enum-no-choices"),
        pytest.param(
            {"type": ArgumentType.ENUM, "choices": ("a", "a")},
            "arguments.topic.choices",
            id="enum-duplicate-choices",
        ),
        pytest.param({"choices": ("a",)}, "arguments.topic.choices", id="choices-on-string"),
        pytest.param(
            {"type": ArgumentType.INTEGER, "max_length": 5},
            "arguments.topic.max_length",
            id="max-length-on-integer",
        ),
        pytest.param({"max_length": 0}, "arguments.topic.max_length", id="max-length-zero"),
        pytest.param(
            {"max_length": MAX_STRING_LENGTH + 1},
            "arguments.topic.max_length",
            id="max-length-over-limit",
        ),
        pytest.param({"minimum": 1}, "arguments.topic", id="minimum-on-string"),
        pytest.param(
            {"type": ArgumentType.BOOLEAN, "maximum": 1}, "arguments.topic", id="maximum-on-boolean"
        ),
        pytest.param(
            {"type": ArgumentType.NUMBER, "minimum": 2, "maximum": 1},
            "arguments.topic.minimum",
            id="minimum-above-maximum",
        ),
    ],
)
def test_an_argument_that_breaks_an_invariant_is_rejected_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        argument(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"type": ArgumentType.ENUM, "choices": ("dry", "warm")}, id="enum"),
        pytest.param({"max_length": 1}, id="shortest-max-length"),
        pytest.param({"max_length": MAX_STRING_LENGTH}, id="longest-max-length"),
        pytest.param({"type": ArgumentType.INTEGER, "minimum": 1}, id="minimum-only"),
        pytest.param({"type": ArgumentType.NUMBER, "maximum": 1.5}, id="maximum-only"),
        pytest.param({"type": ArgumentType.INTEGER, "minimum": 3, "maximum": 3}, id="equal-bounds"),
        pytest.param({"required": True}, id="required-without-default"),
        pytest.param({"default": "tea"}, id="optional-with-default"),
    ],
)
def test_an_argument_within_its_invariants_is_accepted(changes: dict[str, Any]) -> None:
    assert argument(**changes).name == "topic"


def test_a_string_argument_without_max_length_is_limited_to_the_default_length() -> None:
    assert argument().effective_max_length == DEFAULT_STRING_LENGTH


def test_a_string_argument_is_limited_to_its_declared_max_length() -> None:
    assert argument(max_length=40).effective_max_length == 40


@pytest.mark.parametrize(
    "argument_type",
    [ArgumentType.INTEGER, ArgumentType.NUMBER, ArgumentType.BOOLEAN, ArgumentType.ENUM],
)
def test_only_string_arguments_have_a_length_limit(argument_type: ArgumentType) -> None:
    choices = ("a",) if argument_type is ArgumentType.ENUM else ()
    assert argument(type=argument_type, choices=choices).effective_max_length is None


@pytest.mark.parametrize("role", ["user", "assistant"])
def test_a_message_may_come_from_the_user_or_the_assistant(role: Role) -> None:
    assert MessageTemplate(role=role, template="Hi").role == role


def test_a_message_from_any_other_role_is_rejected() -> None:
    with pytest.raises(CatalogError) as caught:
        MessageTemplate(role=cast(Role, "system"), template="Hi")
    assert caught.value.field == "messages.role"


def test_a_blank_message_template_is_rejected() -> None:
    with pytest.raises(CatalogError) as caught:
        MessageTemplate(role="user", template=" \n ")
    assert caught.value.field == "messages.content"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"system_prompt": " "}, "generation.system_prompt", id="blank-system-prompt"),
        pytest.param({"max_tokens": 0}, "generation.max_tokens", id="no-tokens"),
        pytest.param(
            {"max_tokens": MAX_TOKENS_LIMIT + 1}, "generation.max_tokens", id="too-many-tokens"
        ),
        pytest.param({"temperature": -0.1}, "generation.temperature", id="negative-temperature"),
        pytest.param({"temperature": 2.1}, "generation.temperature", id="temperature-over-two"),
    ],
)
def test_generation_settings_that_break_an_invariant_are_rejected_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        GenerationSettings(**({"system_prompt": "Be brief."} | changes))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("max_tokens", "temperature"),
    [(1, 0.0), (MAX_TOKENS_LIMIT, 2.0), (4096, None)],
)
def test_generation_settings_at_their_limits_are_accepted(
    max_tokens: int, temperature: float | None
) -> None:
    settings = GenerationSettings(
        system_prompt="Be brief.", max_tokens=max_tokens, temperature=temperature
    )
    assert (settings.max_tokens, settings.temperature) == (max_tokens, temperature)


def test_generation_settings_default_to_4096_tokens_and_the_model_temperature() -> None:
    settings = GenerationSettings(system_prompt="Be brief.")
    assert (settings.max_tokens, settings.temperature) == (4096, None)


def test_a_minimal_prompt_definition_is_valid() -> None:
    prompt = definition()
    assert (prompt.name, prompt.generation) == ("greet", None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"name": "Greet"}, "name", id="bad-name"),
        pytest.param({"title": ""}, "title", id="blank-title"),
        pytest.param({"description": "\t"}, "description", id="blank-description"),
        pytest.param({"version": "1.0"}, "version", id="two-part-version"),
        pytest.param({"version": "v1.0.0"}, "version", id="prefixed-version"),
        pytest.param({"tags": ("demo", "Bad Tag")}, "tags", id="bad-tag"),
        pytest.param({"tags": ("-demo",)}, "tags", id="tag-starts-with-dash"),
        pytest.param(
            {"arguments": (argument(name="who"), argument(name="who")), "example": ()},
            "arguments",
            id="duplicate-arguments",
        ),
        pytest.param({"messages": ()}, "messages", id="no-messages"),
        pytest.param(
            {"example": (("who", "world"), ("whom", "x"))}, "example", id="unknown-example-key"
        ),
        pytest.param({"example": ()}, "example", id="example-misses-required"),
    ],
)
def test_a_prompt_that_breaks_an_invariant_is_rejected_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        definition(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("argument_type", "value", "fits"),
    [
        (ArgumentType.STRING, "x", True),
        (ArgumentType.STRING, 1, False),
        (ArgumentType.ENUM, "basic", True),
        (ArgumentType.BOOLEAN, False, True),
        (ArgumentType.BOOLEAN, "false", False),
        (ArgumentType.BOOLEAN, 0, False),
        (ArgumentType.INTEGER, 3, True),
        (ArgumentType.INTEGER, "3", False),
        (ArgumentType.INTEGER, True, False),
        (ArgumentType.INTEGER, 3.0, False),
        (ArgumentType.NUMBER, 3, True),
        (ArgumentType.NUMBER, 0.5, True),
        (ArgumentType.NUMBER, "0.5", False),
        (ArgumentType.NUMBER, False, False),
    ],
)
def test_a_value_fits_a_type_only_when_it_already_has_that_type(
    argument_type: ArgumentType, value: Scalar, fits: bool
) -> None:
    assert fits_type(argument_type, value) is fits


def test_a_default_of_another_type_is_rejected_naming_the_default() -> None:
    with pytest.raises(CatalogError) as caught:
        argument(name="loud", type=ArgumentType.BOOLEAN, default="false")
    assert caught.value.field == "arguments.loud.default"


def test_an_example_value_of_another_type_is_rejected_naming_the_example_field() -> None:
    count = argument(name="count", type=ArgumentType.INTEGER, required=True)
    with pytest.raises(CatalogError) as caught:
        definition(arguments=(count,), example=(("count", "3"),))
    assert caught.value.field == "example.count"


def test_duplicate_argument_names_are_all_listed() -> None:
    arguments = tuple(argument(name=n) for n in ("b", "a", "b", "a", "c"))
    with pytest.raises(CatalogError) as caught:
        definition(arguments=arguments, example=())
    assert caught.value.message == "duplicate argument names: a, b"


def test_an_example_may_leave_out_optional_arguments() -> None:
    prompt = definition(arguments=(argument(name="who"),), example=())
    assert prompt.example_arguments == {}


def test_the_example_reads_as_a_mapping() -> None:
    prompt = definition(
        arguments=(argument(name="who", required=True), argument(name="times")),
        example=(("who", "world"), ("times", "twice")),
    )
    assert prompt.example_arguments == {"who": "world", "times": "twice"}


def test_a_declared_argument_is_found_by_name() -> None:
    prompt = definition()
    assert prompt.argument("who") is prompt.arguments[0]


def test_an_undeclared_argument_is_not_found() -> None:
    assert definition().argument("whom") is None


def test_a_prompt_definition_is_immutable() -> None:
    prompt = definition()
    with pytest.raises(FrozenInstanceError):
        prompt.name = "other"  # type: ignore[misc]  # writing a frozen field on purpose


def test_a_rendered_prompt_keeps_its_messages_in_order() -> None:
    messages = (RenderedMessage("user", "Hi"), RenderedMessage("assistant", "Hello"))
    assert RenderedPrompt("greet", "Says hello.", messages).messages == messages


def test_a_rendered_prompt_without_messages_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one message"):
        RenderedPrompt("greet", "Says hello.", ())


@pytest.mark.parametrize(
    ("older", "newer"),
    [("1.0.0", "1.0.1"), ("1.9.0", "1.10.0"), ("0.9.9", "1.0.0"), ("2.0.0", "10.0.0")],
)
def test_versions_order_by_number_not_by_text(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


@pytest.mark.parametrize("text", ["1.0.0", "0.0.0", "10.20.30"])
def test_well_formed_versions_are_versions(text: str) -> None:
    assert is_version(text)


@pytest.mark.parametrize(
    "text",
    ["1.0", "01.0.0", "1.0.0-rc1", "v1.0.0", "1.0.0 ", "1.0.0\n", "1.0.\u0663", "", "1..0"],
)
def test_anything_else_is_not_a_version(text: str) -> None:
    assert not is_version(text)


@pytest.mark.parametrize(
    ("reference", "split"),
    [
        ("prp", ("prp", None)),
        ("prp@1.2.0", ("prp", "1.2.0")),
        ("prp@", ("prp", "")),
        ("prp@1@2", ("prp", "1@2")),
    ],
)
def test_a_reference_splits_at_the_first_at_sign(
    reference: str, split: tuple[str, str | None]
) -> None:
    assert split_reference(reference) == split


def test_a_definition_names_its_pinned_reference() -> None:
    definition = PromptDefinition(
        name="greet",
        title="Greet",
        description="Says hello.",
        version="1.2.3",
        tags=(),
        arguments=(),
        messages=(MessageTemplate(role="user", template="Hello"),),
        example=(),
        deprecated=True,
    )
    assert (definition.reference, definition.deprecated) == ("greet@1.2.3", True)
