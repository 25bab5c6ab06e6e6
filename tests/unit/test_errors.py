"""How domain errors describe themselves."""

import importlib
import pkgutil

import pytest

import domain
from domain.errors import (
    CatalogError,
    CtxfyError,
    FieldError,
    InvalidArguments,
    PromptNotFound,
    PromptRenderError,
)


@pytest.mark.parametrize(
    ("location", "text"),
    [
        pytest.param({}, "bad value", id="nowhere"),
        pytest.param({"source": "a.yaml"}, "a.yaml: bad value", id="file"),
        pytest.param({"field": "title"}, "field 'title': bad value", id="field"),
        pytest.param(
            {"source": "a.yaml", "prompt": "greet", "field": "title"},
            "a.yaml: prompt 'greet': field 'title': bad value",
            id="file-prompt-field",
        ),
        pytest.param({"source": "a.yaml", "prompt": ""}, "a.yaml: bad value", id="empty-prompt"),
    ],
)
def test_a_catalog_error_reads_file_then_prompt_then_field_then_message(
    location: dict[str, str], text: str
) -> None:
    assert str(CatalogError("bad value", **location)) == text


def test_a_catalog_error_keeps_its_parts() -> None:
    error = CatalogError("bad value", source="a.yaml", prompt="greet", field="title")
    assert (error.message, error.source, error.prompt, error.field) == (
        "bad value",
        "a.yaml",
        "greet",
        "title",
    )


def test_locating_a_catalog_error_adds_the_file_and_prompt_and_keeps_the_field() -> None:
    located = CatalogError("bad value", field="title").located(source="a.yaml", prompt="greet")
    assert str(located) == "a.yaml: prompt 'greet': field 'title': bad value"


def test_locating_a_catalog_error_keeps_the_prompt_it_already_names() -> None:
    error = CatalogError("bad value", prompt="inner")
    assert error.located(source="a.yaml", prompt="outer").prompt == "inner"


def test_a_catalog_error_can_be_located_in_a_file_without_a_prompt() -> None:
    located = CatalogError("bad value").located(source="a.yaml", prompt=None)
    assert (located.source, located.prompt, str(located)) == ("a.yaml", None, "a.yaml: bad value")


def test_an_unknown_prompt_is_reported_by_name() -> None:
    error = PromptNotFound("nope")
    assert (error.name, str(error)) == ("nope", "Unknown prompt: 'nope'")


def test_a_field_error_is_invalid_unless_told_otherwise() -> None:
    assert FieldError("count", "too big").type == "invalid"


def test_invalid_arguments_lists_every_field_error() -> None:
    errors = (FieldError("count", "too big", "less_than_equal"), FieldError("tone", "not a choice"))
    error = InvalidArguments("greet", errors)
    assert (error.prompt, error.errors) == ("greet", errors)
    assert str(error) == "Invalid arguments for prompt 'greet': count: too big; tone: not a choice"


def test_invalid_arguments_needs_at_least_one_field_error() -> None:
    with pytest.raises(ValueError, match="at least one FieldError"):
        InvalidArguments("greet", ())


def test_a_render_error_names_the_prompt_and_the_reason() -> None:
    error = PromptRenderError("greet", "division by zero")
    assert (error.prompt, error.reason) == ("greet", "division by zero")
    assert str(error) == "Prompt 'greet' could not be rendered: division by zero"


def _domain_exceptions() -> list[type[Exception]]:
    """Every exception class the domain package defines, found by importing its modules."""
    found: list[type[Exception]] = []
    for module_info in pkgutil.iter_modules(domain.__path__, "domain."):
        module = importlib.import_module(module_info.name)
        found.extend(
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Exception)
            and value.__module__ == module.__name__
        )
    return found


DOMAIN_EXCEPTIONS = _domain_exceptions()


def test_the_domain_defines_errors_to_check() -> None:
    assert len(DOMAIN_EXCEPTIONS) > 10


@pytest.mark.parametrize("error", DOMAIN_EXCEPTIONS, ids=lambda e: e.__name__)
def test_every_domain_error_derives_from_the_one_base(error: type[Exception]) -> None:
    assert issubclass(error, CtxfyError)


@pytest.mark.parametrize(
    "error", [e for e in DOMAIN_EXCEPTIONS if e is not CtxfyError], ids=lambda e: e.__name__
)
def test_every_domain_error_has_a_code_of_its_own_and_a_one_line_docstring(
    error: type[CtxfyError],
) -> None:
    assert error.code != CtxfyError.code
    assert "code" in vars(error), "a code is not inherited: clients would not tell them apart"
    assert error.__doc__ is not None
    assert "\n" not in error.__doc__.strip()


def test_no_two_domain_errors_share_a_code() -> None:
    codes = [vars(e)["code"] for e in DOMAIN_EXCEPTIONS if "code" in vars(e)]
    assert len(codes) == len(set(codes))
