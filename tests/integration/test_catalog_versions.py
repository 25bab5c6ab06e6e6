"""A prompt in several versions: which one is current, pinning, deprecation, the digest."""

from pathlib import Path

import pytest

from domain.errors import CatalogError, PromptNotFound, PromptVersionNotFound
from infrastructure.catalog.loader import load_catalog
from tests.integration.prompt_files import prompt, write_prompt


def versions(directory: Path, *specs: tuple[str, bool]) -> None:
    """One file per (version, deprecated), each saying which version it is."""
    for number, deprecated in specs:
        document = prompt(
            version=number,
            deprecated=deprecated,
            messages=[{"role": "user", "content": f"v{number}: Hello, {{{{ who }}}}!"}],
        )
        write_prompt(directory, document, f"greet-{number}.yaml")


def test_the_current_version_is_the_newest_in_number_order(tmp_path: Path) -> None:
    versions(tmp_path, ("1.9.0", False), ("1.10.0", False), ("1.2.0", False))
    catalog = load_catalog(tmp_path)
    assert catalog.get("greet").version == "1.10.0"
    assert [e.version for e in catalog.versions("greet")] == ["1.10.0", "1.9.0", "1.2.0"]
    assert catalog.version_count - len(catalog) == 2  # two extra versions of one prompt


def test_a_deprecated_version_is_never_current_while_another_is_not(tmp_path: Path) -> None:
    versions(tmp_path, ("1.0.0", False), ("2.0.0", True))
    catalog = load_catalog(tmp_path)
    current = catalog.get("greet")
    assert (current.version, current.definition.deprecated) == ("1.0.0", False)
    pinned = catalog.resolve("greet@2.0.0")
    assert pinned.definition.deprecated
    assert pinned.render({"who": "x"}).messages[0].text == "v2.0.0: Hello, x!"


def test_when_every_version_is_deprecated_the_newest_is_still_served(tmp_path: Path) -> None:
    versions(tmp_path, ("1.0.0", True), ("1.1.0", True))
    assert load_catalog(tmp_path).get("greet").version == "1.1.0"


def test_iterating_yields_each_prompt_once_and_entries_every_version(tmp_path: Path) -> None:
    versions(tmp_path, ("1.0.0", False), ("1.1.0", False))
    write_prompt(tmp_path, prompt(name="other"), "other.yaml")
    (tmp_path / "no-builtins").mkdir()
    catalog = load_catalog(tmp_path, builtin_dir=tmp_path / "no-builtins")
    assert [(e.name, e.version) for e in catalog] == [("greet", "1.1.0"), ("other", "1.0.0")]
    assert [e.definition.reference for e in catalog.entries()] == [
        "greet@1.1.0",
        "greet@1.0.0",
        "other@1.0.0",
    ]


def test_a_pinned_reference_and_a_version_argument_reach_the_same_entry(tmp_path: Path) -> None:
    versions(tmp_path, ("1.0.0", False), ("1.1.0", False))
    catalog = load_catalog(tmp_path)
    old = catalog.resolve("greet@1.0.0")
    assert catalog.resolve("greet", version="1.0.0") is old
    assert catalog.resolve("greet@1.0.0", version="1.0.0") is old
    assert catalog.resolve("greet") is catalog.get("greet")
    rendered = old.render({"who": "you"})
    assert (rendered.version, rendered.messages[0].text) == ("1.0.0", "v1.0.0: Hello, you!")


def test_an_unknown_version_names_the_versions_that_exist(tmp_path: Path) -> None:
    versions(tmp_path, ("1.0.0", False), ("1.1.0", False))
    catalog = load_catalog(tmp_path)
    with pytest.raises(PromptVersionNotFound) as caught:
        catalog.resolve("greet@3.0.0")
    error = caught.value
    assert (error.name, error.version, error.available) == ("greet", "3.0.0", ("1.1.0", "1.0.0"))
    assert str(error) == "Prompt 'greet' has no version '3.0.0'; it has 1.1.0, 1.0.0"


def test_an_unknown_name_is_not_found_whether_pinned_or_not(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    for reference in ("nope", "nope@1.0.0"):
        with pytest.raises(PromptNotFound) as caught:
            catalog.resolve(reference)
        assert not isinstance(caught.value, PromptVersionNotFound)
        assert caught.value.name == "nope"


def test_two_pins_that_disagree_are_refused(tmp_path: Path) -> None:
    versions(tmp_path, ("1.0.0", False), ("1.1.0", False))
    with pytest.raises(PromptNotFound) as caught:
        load_catalog(tmp_path).resolve("greet@1.0.0", version="1.1.0")
    assert "pinned to 1.0.0, but version 1.1.0 was asked for" in str(caught.value)


def test_the_same_version_in_two_files_names_both_and_the_version(tmp_path: Path) -> None:
    first = write_prompt(tmp_path, prompt(version="1.2.0"), "a.yaml")
    second = write_prompt(tmp_path, prompt(version="1.2.0"), "b.yaml")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert str(caught.value) == (
        f"{second}: prompt 'greet': version '1.2.0': field 'version': "
        f"version 1.2.0 is already defined by {first}"
    )


def test_an_operator_file_cannot_add_a_version_to_a_built_in_prompt(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, prompt(name="prp", version="99.0.0"), "prp.yaml")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    error = caught.value
    assert (error.source, error.prompt, error.version, error.field) == (
        str(path),
        "prp",
        "99.0.0",
        "name",
    )


def test_a_broken_version_file_names_its_version(tmp_path: Path) -> None:
    versions(tmp_path, ("1.0.0", False))
    broken = prompt(version="1.1.0", messages=[{"role": "user", "content": "{{ whom }}"}])
    path = write_prompt(tmp_path, broken, "greet-1.1.0.yaml")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert str(caught.value).startswith(
        f"{path}: prompt 'greet': version '1.1.0': field 'messages[0].content': "
    )


def test_deprecated_must_be_a_boolean(tmp_path: Path) -> None:
    path = write_prompt(tmp_path, prompt(deprecated="yes"))
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert (caught.value.source, caught.value.field) == (str(path), "deprecated")


def test_the_digest_follows_content_not_file_names(tmp_path: Path) -> None:
    first, second, third = (tmp_path / name for name in ("one", "two", "three"))
    for directory in (first, second, third):
        directory.mkdir()
    write_prompt(first, prompt(), "a.yaml")
    write_prompt(second, prompt(), "renamed.yaml")
    write_prompt(third, prompt(title="Greet warmly"), "a.yaml")
    digests = [load_catalog(d).digest for d in (first, second, third)]
    assert digests[0] == digests[1]
    assert digests[2] != digests[0]
    assert len(digests[0]) == 64
    assert load_catalog(first).digest == digests[0]  # loading again gives the same value
