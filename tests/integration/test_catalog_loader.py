"""Loading prompt files into a catalog: the built-ins, file and directory checks, lookup."""

from pathlib import Path

import pytest

from domain.errors import CatalogError, PromptNotFound
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.catalog.loader import (
    BUILTIN_DIR,
    MAX_FILE_BYTES,
    load_catalog,
    load_entry,
    prompt_files,
)
from tests.integration.prompt_files import load_prompt, prompt, write_prompt

BUILTIN_FILES = prompt_files(BUILTIN_DIR)


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


def test_a_file_loaded_again_unchanged_is_reused_and_a_changed_one_is_compiled_anew(
    tmp_path: Path,
) -> None:
    first = load_prompt(tmp_path, prompt())
    assert load_entry(tmp_path / "greet.yaml") is first
    changed = load_prompt(tmp_path, prompt(description="Greets someone warmly."))
    assert changed is not first
    assert changed.definition.description == "Greets someone warmly."
    assert changed.digest != first.digest


def test_a_file_fixed_after_an_error_loads(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, prompt(drop=["messages"]))
    with pytest.raises(CatalogError):
        load_entry(path)
    assert load_prompt(tmp_path, prompt()).render({"who": "Ada"}).messages[0].text == "Hello, Ada!"


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


def test_two_operator_files_cannot_define_the_same_version(tmp_path: Path) -> None:
    first = write_prompt(tmp_path, prompt(), "a.yaml")
    second = write_prompt(tmp_path, prompt(), "b.yml")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    error = caught.value
    assert (error.source, error.prompt, error.field) == (str(second), "greet", "version")
    assert error.message == f"version 1.0.0 is already defined by {first}"


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
