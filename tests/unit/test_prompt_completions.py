"""Argument completion values, and the rules for the suggestions a string argument may offer."""

import pytest

from domain.errors import CatalogError
from domain.prompts import MAX_SUGGESTION_LENGTH, MAX_SUGGESTIONS, ArgumentType, PromptArgument


def argument(kind: ArgumentType = ArgumentType.STRING, **fields: object) -> PromptArgument:
    return PromptArgument(name="tone", type=kind, description="How it reads.", **fields)  # type: ignore[arg-type]  # per-test fields, for PromptArgument to check


def test_an_enum_completes_to_its_choices_starting_with_what_was_typed_first() -> None:
    tone = argument(ArgumentType.ENUM, choices=("formal", "friendly", "informal"))
    assert tone.completions("f") == ("formal", "friendly", "informal")
    assert tone.completions("FOR") == ("formal", "informal")
    assert tone.completions("") == ("formal", "friendly", "informal")
    assert tone.completions("x") == ()


def test_a_boolean_completes_to_true_or_false() -> None:
    assert argument(ArgumentType.BOOLEAN).completions("t") == ("true",)
    assert argument(ArgumentType.BOOLEAN).completions("") == ("true", "false")


def test_a_string_completes_to_its_suggestions_and_numbers_to_nothing() -> None:
    domain = argument(suggestions=("payments backend", "identity platform"))
    assert domain.completions("back") == ("payments backend",)
    assert argument().completions("a") == ()
    assert argument(ArgumentType.INTEGER).completions("1") == ()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param(
            {"kind": ArgumentType.ENUM, "choices": ("a",), "suggestions": ("a",)},
            "only string",
            id="enum",
        ),
        pytest.param({"suggestions": ("a", "a")}, "unique", id="duplicate"),
        pytest.param({"suggestions": (" ",)}, "non-empty", id="blank"),
        pytest.param(
            {"suggestions": ("x" * (MAX_SUGGESTION_LENGTH + 1),)}, "at most", id="too-long"
        ),
        pytest.param(
            {"suggestions": tuple(str(n) for n in range(MAX_SUGGESTIONS + 1))},
            f"at most {MAX_SUGGESTIONS}",
            id="too-many",
        ),
    ],
)
def test_suggestions_are_checked(fields: dict[str, object], problem: str) -> None:
    kind = fields.pop("kind", ArgumentType.STRING)
    assert isinstance(kind, ArgumentType)
    with pytest.raises(CatalogError, match=problem) as raised:
        argument(kind, **fields)
    assert raised.value.field == "arguments.tone.suggestions"
