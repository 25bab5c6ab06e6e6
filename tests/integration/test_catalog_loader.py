"""Loading prompt files into a catalog: real files, real YAML, real Jinja, real pydantic."""

from pathlib import Path
from typing import Any

import pytest

from domain.errors import CatalogError, PromptNotFound
from domain.llm import MAX_MODEL_HINT_LENGTH, MAX_MODEL_HINTS, ModelPreferences
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog
from infrastructure.catalog.loader import (
    BUILTIN_DIR,
    MAX_FILE_BYTES,
    load_catalog,
    load_entry,
    prompt_files,
)
from tests.integration.prompt_files import argument, load_prompt, prompt, write_prompt

BUILTIN_FILES = prompt_files(BUILTIN_DIR)
WHO = argument("who", required=True)


def preferring(**preferences: Any) -> dict[str, Any]:
    """Prompt changes: a ``generation:`` block with these ``model_preferences``."""
    return {"generation": {"system_prompt": "Be brief.", "model_preferences": preferences}}


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda path: path.name)
def test_every_built_in_prompt_renders_its_own_example(path: Path) -> None:
    entry = load_entry(path)
    rendered = entry.render(entry.definition.example_arguments)
    assert len(rendered.messages) == len(entry.definition.messages)
    assert all(message.text for message in rendered.messages)


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda path: path.name)
def test_every_built_in_prompt_states_model_priorities_but_no_vendor_hints(path: Path) -> None:
    generation = load_entry(path).definition.generation
    assert generation is not None
    preferences = generation.model_preferences
    assert preferences is not None
    assert preferences.hints == ()
    assert preferences.speed_priority is not None
    assert preferences.intelligence_priority is not None


def test_the_built_in_catalog_loads_one_uniquely_named_prompt_per_file() -> None:
    names = [entry.name for entry in load_catalog()]
    assert len(names) == len(BUILTIN_FILES) == len(set(names))
    assert "context_stack" in names


def test_a_minimal_prompt_file_loads(tmp_path: Path) -> None:
    entry = load_prompt(tmp_path, prompt())
    assert (entry.name, entry.source) == ("greet", str(tmp_path / "greet.yaml"))
    assert entry.render({"who": "Ada"}).messages[0].text == "Hello, Ada!"


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
    assert str(error).startswith(f"{path}: prompt 'greet': field '{field}': ")


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


def test_invalid_yaml_is_rejected_with_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: greet\n  title: Greet\n", "utf-8")
    with pytest.raises(CatalogError) as caught:
        load_entry(path)
    assert (caught.value.source, caught.value.prompt) == (str(path), None)
    assert str(caught.value).startswith(f"{path}: invalid YAML (line 2, column 8): ")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- name: greet\n", id="list"),
        pytest.param("greet\n", id="scalar"),
        pytest.param("", id="empty"),
    ],
)
def test_a_file_that_is_not_a_yaml_mapping_is_rejected(tmp_path: Path, text: str) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(CatalogError, match="must be a YAML mapping") as caught:
        load_entry(path)
    assert caught.value.source == str(path)


def test_a_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_bytes("name: grüß\n".encode("latin-1"))
    with pytest.raises(CatalogError, match="not valid UTF-8") as caught:
        load_entry(path)
    assert caught.value.source == str(path)


def test_a_file_over_one_mebibyte_is_rejected_before_it_is_parsed(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, prompt())
    with path.open("a", encoding="utf-8") as file:
        file.write("#" * MAX_FILE_BYTES)
    with pytest.raises(CatalogError, match=f"larger than {MAX_FILE_BYTES} bytes") as caught:
        load_entry(path)
    assert caught.value.source == str(path)


def test_a_file_of_exactly_one_mebibyte_is_accepted(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, prompt())
    padding = MAX_FILE_BYTES - path.stat().st_size - 1
    with path.open("a", encoding="utf-8") as file:
        file.write("#" * padding + "\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert load_entry(path).name == "greet"


def test_a_file_that_cannot_be_read_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gone.yaml"
    with pytest.raises(CatalogError, match="cannot read file: No such file") as caught:
        load_entry(path)
    assert caught.value.source == str(path)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_prompts_directory_that_is_not_a_directory_is_rejected(tmp_path: Path, kind: str) -> None:
    directory = tmp_path / "prompts"
    if kind == "file":
        directory.write_text("", "utf-8")
    with pytest.raises(CatalogError, match="does not exist or is not a directory") as caught:
        load_catalog(directory)
    assert caught.value.source == str(directory)


def test_operator_prompts_follow_the_built_ins_in_file_name_order(tmp_path: Path) -> None:
    write_prompt(tmp_path, prompt(name="zulu"), "a_first.yml")
    write_prompt(tmp_path, prompt(name="alpha"), "b_second.yaml")
    names = [entry.name for entry in load_catalog(tmp_path)]
    builtin = [entry.name for entry in load_catalog()]
    assert names == [*builtin, "zulu", "alpha"]


def test_files_that_are_not_yaml_prompts_are_ignored(tmp_path: Path) -> None:
    write_prompt(tmp_path, prompt())
    for name in ("README.md", "notes.txt", "greet.yaml.orig", "greet.json", "GREET.YAML"):
        (tmp_path / name).write_text("not: [a prompt", "utf-8")
    (tmp_path / "nested.yaml").mkdir()
    assert prompt_files(tmp_path) == [tmp_path / "greet.yaml"]
    assert "greet" in load_catalog(tmp_path)


def test_an_operator_prompt_cannot_reuse_a_built_in_name(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, prompt(name="context_stack"))
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    error = caught.value
    assert (error.source, error.prompt, error.field) == (str(path), "context_stack", "name")
    assert str(BUILTIN_DIR / "context_stack.yaml") in error.message


def test_two_operator_files_cannot_define_the_same_prompt(tmp_path: Path) -> None:
    first = write_prompt(tmp_path, prompt(), "a.yaml")
    second = write_prompt(tmp_path, prompt(), "b.yml")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert (caught.value.source, caught.value.prompt) == (str(second), "greet")
    assert caught.value.message == f"prompt name is already defined by {first}"


def test_a_catalog_finds_entries_by_name_and_keeps_their_order(tmp_path: Path) -> None:
    entries = [load_prompt(tmp_path, prompt(name=name)) for name in ("zulu", "alpha", "mike")]
    catalog = PromptCatalog(entries)
    assert len(catalog) == 3
    assert list(catalog) == entries
    assert catalog.get("alpha") is entries[1]
    assert "mike" in catalog
    assert "oscar" not in catalog
    assert 42 not in catalog


def test_asking_a_catalog_for_an_unknown_prompt_raises_prompt_not_found() -> None:
    with pytest.raises(PromptNotFound) as caught:
        PromptCatalog([]).get("nope")
    assert caught.value.name == "nope"


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
