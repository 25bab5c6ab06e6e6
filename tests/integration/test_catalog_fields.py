"""A prompt file's fields: an invalid value is rejected naming its field, a valid one loads."""

from pathlib import Path
from typing import Any

import pytest

from domain.errors import CatalogError
from domain.llm import MAX_MODEL_HINT_LENGTH, MAX_MODEL_HINTS, ModelPreferences
from domain.prompts import is_version
from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.catalog.loader import load_entry
from tests.integration.prompt_files import argument, load_prompt, prompt, write_prompt

WHO = argument("who", required=True)


def preferring(**preferences: Any) -> dict[str, Any]:
    """Prompt changes: a ``generation:`` block with these ``model_preferences``."""
    return {"generation": {"system_prompt": "Be brief.", "model_preferences": preferences}}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        pytest.param({"colour": "blue"}, "colour", "Extra inputs", id="unknown-top-level-field"),
        pytest.param(
            {"arguments": [argument("who", required=True, colour="blue")]},
            "arguments.0.colour",
            "Extra inputs",
            id="unknown-argument-field",
        ),
        pytest.param({"version": 1}, "version", "valid string", id="wrong-type"),
        pytest.param(
            {"generation": {"system_prompt": "Be brief.", "temperature": "hot"}},
            "generation.temperature",
            "must be a single integer or number value",
            id="number-only-field-given-text",
        ),
        pytest.param(
            {"example": {"who": ["Ada"]}},
            "example.who",
            "must be a single string, boolean, integer or number value",
            id="scalar-field-given-a-list",
        ),
        pytest.param(
            {"arguments": [argument("who", "text", required=True)]},
            "arguments.0.type",
            "Input should be",
            id="unknown-argument-type",
        ),
        pytest.param({"messages": []}, "messages", "at least 1 item", id="no-messages"),
        pytest.param({"version": "one"}, "version", "MAJOR.MINOR.PATCH", id="domain-invariant"),
        pytest.param(
            {"arguments": [argument("who", required=True, default="you")]},
            "arguments.who.default",
            "cannot have a default",
            id="required-with-default",
        ),
        pytest.param(
            {"messages": [{"content": "Hello, {{ who"}]},
            "messages[0].content",
            "template syntax error on line 1",
            id="template-syntax-error",
        ),
        pytest.param(
            {"messages": [{"content": "Hi"}, {"content": "{{ who }} and {{ whom }}"}]},
            "messages[1].content",
            "undeclared variables: whom",
            id="undeclared-variable",
        ),
        pytest.param({"example": {}}, "example", "missing: who", id="example-misses-required"),
        pytest.param(
            {
                "arguments": [argument("count", "integer", required=True)],
                "example": {"count": "many"},
                "messages": [{"content": "{{ count }}"}],
            },
            "example.count",
            "of type integer",
            id="example-wrong-type",
        ),
        pytest.param(
            {
                "arguments": [
                    WHO,
                    argument("tone", "enum", choices=["dry", "warm"], default="sweet"),
                ]
            },
            "arguments.tone.default",
            "'dry' or 'warm'",
            id="enum-default-not-a-choice",
        ),
        pytest.param(
            {"arguments": [WHO, argument("note", max_length=3, default="long")]},
            "arguments.note.default",
            "at most 3 characters",
            id="default-too-long",
        ),
        pytest.param(
            {"arguments": [WHO, argument("count", "integer", minimum=1, maximum=5, default=9)]},
            "arguments.count.default",
            "less than or equal to 5",
            id="default-out-of-range",
        ),
        pytest.param(
            preferring(colour="blue"),
            "generation.model_preferences.colour",
            "Extra inputs",
            id="unknown-model-preference",
        ),
        pytest.param(
            preferring(speed_priority=1.5),
            "generation.model_preferences",
            "speed_priority must be between 0 and 1",
            id="priority-over-one",
        ),
        pytest.param(
            preferring(cost_priority=-0.1),
            "generation.model_preferences",
            "cost_priority must be between 0 and 1",
            id="negative-priority",
        ),
        pytest.param(
            preferring(hints=["sonnet", " "]),
            "generation.model_preferences",
            "a model hint must be non-empty",
            id="blank-model-hint",
        ),
        pytest.param(
            preferring(hints=["x" * (MAX_MODEL_HINT_LENGTH + 1)]),
            "generation.model_preferences",
            f"at most {MAX_MODEL_HINT_LENGTH} characters",
            id="model-hint-too-long",
        ),
        pytest.param(
            preferring(hints=[f"model-{i}" for i in range(MAX_MODEL_HINTS + 1)]),
            "generation.model_preferences",
            f"at most {MAX_MODEL_HINTS} model hints",
            id="too-many-model-hints",
        ),
        pytest.param(
            preferring(hints=[4]),
            "generation.model_preferences.hints.0",
            "valid string",
            id="model-hint-not-a-string",
        ),
    ],
)
def test_an_invalid_prompt_file_is_rejected_naming_file_prompt_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str, message: str
) -> None:
    path = write_prompt(tmp_path, prompt(**changes))
    with pytest.raises(CatalogError) as caught:
        load_entry(path)
    error = caught.value
    assert (error.source, error.prompt, error.field) == (str(path), "greet", field)
    assert message in error.message
    # The version is named when the file gives a well-formed one.
    version = changes.get("version", "1.0.0")
    valid = isinstance(version, str) and is_version(version)
    assert error.version == (version if valid else None)
    named = f"version '{version}': " if valid else ""
    assert str(error).startswith(f"{path}: prompt 'greet': {named}field '{field}': ")


def test_model_preferences_load_into_the_generation_settings(tmp_path: Path) -> None:
    document = prompt(
        **preferring(
            hints=["haiku", "flash"],
            cost_priority=0,
            speed_priority=0.8,
            intelligence_priority=1,
        )
    )
    generation = load_prompt(tmp_path, document).definition.generation
    assert generation is not None
    assert generation.model_preferences == ModelPreferences(
        hints=("haiku", "flash"), cost_priority=0, speed_priority=0.8, intelligence_priority=1
    )


def test_a_generation_block_without_model_preferences_has_none(tmp_path: Path) -> None:
    document = prompt(generation={"system_prompt": "Be brief."})
    generation = load_prompt(tmp_path, document).definition.generation
    assert generation is not None
    assert generation.model_preferences is None


def load_or_reject(directory: Path, document: object) -> CatalogEntry | CatalogError:
    """Either outcome, for behaviour where rejecting and loading correctly are both right."""
    try:
        return load_prompt(directory, document)
    except CatalogError as exc:
        return exc


@pytest.mark.parametrize(
    ("declared", "raw", "typed"),
    [
        pytest.param(argument("loud", "boolean", default="false"), "false", False, id="boolean"),
        pytest.param(argument("loud", "integer", default="3"), "3", 3, id="integer"),
    ],
)
def test_a_default_written_as_a_string_is_rejected_or_served_as_its_type(
    tmp_path: Path, declared: dict[str, Any], raw: str, typed: object
) -> None:
    document = prompt(arguments=[WHO, declared], messages=[{"content": "{{ loud }}"}])
    outcome = load_or_reject(tmp_path, document)
    if isinstance(outcome, CatalogError):
        assert outcome.field == "arguments.loud.default"
    else:
        assert outcome.validate({"who": "Ada"})["loud"] == typed
        assert outcome.render({"who": "Ada"}).messages[0].text != raw


@pytest.mark.parametrize("name", ["json", "copy", "validate", "schema"])
def test_an_argument_named_like_a_base_model_attribute_is_a_catalog_error_or_loads_cleanly(
    tmp_path: Path, name: str
) -> None:
    document = prompt(
        arguments=[argument(name, required=True)],
        example={name: "x"},
        messages=[{"content": f"{{{{ {name} }}}}"}],
    )
    outcome = load_or_reject(tmp_path, document)
    if isinstance(outcome, CatalogError):
        assert str(outcome.field).startswith("arguments")
    else:
        assert outcome.render({name: "x"}).messages[0].text == "x"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"example": {"who": ["a", "b"]}}, "example.who", id="example"),
        pytest.param(
            {"arguments": [WHO, argument("note", default=["a"])]},
            "arguments.1.default",
            id="default",
        ),
    ],
)
def test_a_non_scalar_value_names_the_field_it_was_written_in(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        load_prompt(tmp_path, prompt(**changes))
    assert caught.value.field == field
