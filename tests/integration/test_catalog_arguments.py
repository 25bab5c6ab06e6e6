"""Validating arguments with a prompt's generated argument model, and that model's schema."""

from pathlib import Path
from typing import Any

import pytest

from domain.errors import InvalidArguments
from domain.prompts import DEFAULT_STRING_LENGTH
from infrastructure.catalog.catalog import CatalogEntry
from tests.integration.prompt_files import argument, load_prompt, prompt

TYPED = prompt(
    arguments=[
        argument("topic", required=True, max_length=10),
        argument("count", "integer", minimum=1, maximum=5, default=3),
        argument("ratio", "number", minimum=0, maximum=1),
        argument("loud", "boolean", default=False),
        argument("tone", "enum", choices=["dry", "warm"], default="dry"),
        argument("note"),
    ],
    example={"topic": "tea", "ratio": 0.5},
    messages=[{"content": "{{ topic }} {{ count }} {{ ratio }} {{ loud }} {{ tone }} {{ note }}"}],
)


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> CatalogEntry:
    return load_prompt(tmp_path_factory.mktemp("typed"), TYPED)


@pytest.mark.parametrize(
    ("name", "sent", "received"),
    [
        ("count", "3", 3),
        ("ratio", "0.25", 0.25),
        ("ratio", "1", 1.0),
        ("loud", "true", True),
        ("loud", "false", False),
    ],
)
def test_string_values_from_mcp_clients_are_coerced_to_the_declared_type(
    entry: CatalogEntry, name: str, sent: str, received: object
) -> None:
    value = entry.validate({"topic": "tea", name: sent})[name]
    assert value == received
    assert type(value) is type(received)


@pytest.mark.parametrize(
    ("sent", "accepted"), [(4.0, True), (4.5, False), (True, False), ("4", False)]
)
def test_a_json_integer_may_be_written_as_a_whole_float_and_nothing_else(
    entry: CatalogEntry, sent: object, accepted: bool
) -> None:
    """JSON Schema's ``integer`` holds ``4.0``; REST bodies are validated strictly."""
    values = {"topic": "tea", "count": sent}
    if accepted:
        validated = entry.argument_model.model_validate(values, strict=True)
        assert (validated.count, type(validated.count)) == (4, int)  # type: ignore[attr-defined]
    else:
        with pytest.raises(ValueError, match="count"):
            entry.argument_model.model_validate(values, strict=True)


def test_a_number_argument_accepts_a_decimal_string(tmp_path: Path) -> None:
    document = prompt(
        arguments=[argument("ratio", "number", required=True)],
        example={"ratio": 2.5},
        messages=[{"content": "{{ ratio }}"}],
    )
    assert load_prompt(tmp_path, document).validate({"ratio": "1.5"}) == {"ratio": 1.5}


def test_defaults_are_filled_in_and_optional_arguments_without_one_are_none(
    entry: CatalogEntry,
) -> None:
    assert entry.validate({"topic": "tea"}) == {
        "topic": "tea",
        "count": 3,
        "ratio": None,
        "loud": False,
        "tone": "dry",
        "note": None,
    }


def test_a_string_without_declared_max_length_is_held_to_the_default_limit(
    entry: CatalogEntry,
) -> None:
    entry.validate({"topic": "tea", "note": "n" * DEFAULT_STRING_LENGTH})
    with pytest.raises(InvalidArguments) as caught:
        entry.validate({"topic": "tea", "note": "n" * (DEFAULT_STRING_LENGTH + 1)})
    assert [e.field for e in caught.value.errors] == ["note"]


@pytest.mark.parametrize(
    ("sent", "fields", "error_type"),
    [
        pytest.param({"count": 0}, ["count"], "greater_than_equal", id="under-minimum"),
        pytest.param({"count": "6"}, ["count"], "less_than_equal", id="over-maximum"),
        pytest.param({"count": 2.5}, ["count"], "int_from_float", id="fractional-integer"),
        pytest.param({"count": "three"}, ["count"], "int_parsing", id="non-numeric-integer"),
        pytest.param({"ratio": 1.01}, ["ratio"], "less_than_equal", id="number-over-maximum"),
        pytest.param({"loud": "maybe"}, ["loud"], "bool_parsing", id="not-a-boolean"),
        pytest.param({"tone": "sweet"}, ["tone"], "literal_error", id="not-a-choice"),
        pytest.param({"topic": "t" * 11}, ["topic"], "string_too_long", id="over-max-length"),
        pytest.param({"colour": "blue"}, ["colour"], "extra_forbidden", id="unknown-argument"),
        pytest.param({"topic": None}, ["topic"], "string_type", id="required-is-null"),
    ],
)
def test_invalid_arguments_name_the_field_and_why(
    entry: CatalogEntry, sent: dict[str, Any], fields: list[str], error_type: str
) -> None:
    with pytest.raises(InvalidArguments) as caught:
        entry.validate({"topic": "tea"} | sent)
    assert caught.value.prompt == "greet"
    assert [e.field for e in caught.value.errors] == fields
    assert [e.type for e in caught.value.errors] == [error_type]


def test_a_missing_required_argument_is_named(entry: CatalogEntry) -> None:
    with pytest.raises(InvalidArguments) as caught:
        entry.validate({})
    assert [(e.field, e.type) for e in caught.value.errors] == [("topic", "missing")]


def test_every_invalid_argument_is_reported_at_once(entry: CatalogEntry) -> None:
    with pytest.raises(InvalidArguments) as caught:
        entry.render({"count": 9, "tone": "sweet", "colour": "blue"})
    assert {e.field for e in caught.value.errors} == {"topic", "count", "tone", "colour"}
    assert "topic: Field required" in str(caught.value)


def test_valid_arguments_render_into_the_messages(entry: CatalogEntry) -> None:
    rendered = entry.render({"topic": "tea", "count": "2", "loud": "true", "note": "hot"})
    assert rendered.messages[0].text == "tea 2 None True dry hot"
    assert (rendered.name, rendered.description) == ("greet", "Says hello.")


def schema_of(entry: CatalogEntry) -> dict[str, Any]:
    return entry.argument_model.model_json_schema()


def test_the_schema_requires_exactly_the_required_arguments(entry: CatalogEntry) -> None:
    assert schema_of(entry)["required"] == ["topic"]


def test_the_schema_forbids_unknown_arguments(entry: CatalogEntry) -> None:
    assert schema_of(entry)["additionalProperties"] is False


def test_the_schema_is_named_after_the_prompt(entry: CatalogEntry) -> None:
    assert schema_of(entry)["title"] == "GreetArguments"


def test_the_schema_carries_each_argument_constraint(entry: CatalogEntry) -> None:
    properties = schema_of(entry)["properties"]
    assert properties["topic"]["maxLength"] == 10
    assert properties["note"]["anyOf"][0]["maxLength"] == DEFAULT_STRING_LENGTH
    assert properties["tone"]["enum"] == ["dry", "warm"]
    assert properties["tone"]["default"] == "dry"
    assert (properties["count"]["minimum"], properties["count"]["maximum"]) == (1, 5)
    assert properties["count"]["type"] == "integer"
    assert properties["loud"] == {
        "default": False,
        "description": "The loud.",
        "title": "Loud",
        "type": "boolean",
    }


def test_the_schema_example_is_the_prompt_example(entry: CatalogEntry) -> None:
    assert schema_of(entry)["examples"] == [entry.definition.example_arguments]
    assert schema_of(entry)["examples"] == [{"topic": "tea", "ratio": 0.5}]


def test_a_required_string_argument_may_not_be_empty(tmp_path: Path) -> None:
    entry = load_prompt(tmp_path, prompt())
    with pytest.raises(InvalidArguments) as caught:
        entry.validate({"who": ""})
    assert [(e.field, e.type) for e in caught.value.errors] == [("who", "string_too_short")]
