"""Template safety: arguments are data, never template source, and the sandbox holds."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import CatalogError, PromptRenderError
from domain.text import is_safe_text
from infrastructure.catalog.catalog import CatalogEntry
from tests.integration.prompt_files import argument, load_prompt, prompt

FRAMED = prompt(messages=[{"content": "<<{{ who }}>>"}])


@pytest.fixture(scope="module")
def framed(tmp_path_factory: pytest.TempPathFactory) -> CatalogEntry:
    return load_prompt(tmp_path_factory.mktemp("framed"), FRAMED)


@pytest.mark.parametrize(
    "value",
    [
        "{{ 7*7 }}",
        "{% for x in who %}{{ x }}{% endfor %}",
        "{{ ''.__class__.__mro__ }}",
        "{# comment #}",
        "{%- raw %}",
    ],
)
def test_template_syntax_in_an_argument_is_rendered_literally(
    framed: CatalogEntry, value: str
) -> None:
    assert framed.render({"who": value}).messages[0].text == f"<<{value}>>"


@given(value=st.text(min_size=1, max_size=300).filter(is_safe_text))
def test_any_string_the_rules_allow_is_rendered_verbatim(framed: CatalogEntry, value: str) -> None:
    # Control and bidi characters are refused before rendering (tests/unit/test_text.py).
    assert framed.render({"who": value}).messages[0].text == f"<<{value}>>"


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__",
        "who.__class__.__mro__",
        "who.__class__.__base__.__subclasses__()",
        "who.format.__globals__",
        "cycler.__init__.__globals__",
        "lipsum.__globals__",
        "self._TemplateReference__context",
    ],
)
def test_a_template_reaching_for_python_internals_is_rejected_when_its_example_renders(
    tmp_path: Path, expression: str
) -> None:
    document = prompt(messages=[{"content": f"Hello, {{{{ {expression} }}}}"}])
    with pytest.raises(CatalogError, match="is unsafe") as caught:
        load_prompt(tmp_path, document)
    assert (caught.value.prompt, caught.value.field) == ("greet", "messages")
    assert not any(marker in caught.value.message for marker in ("<class", "object at 0x"))


def test_a_sandbox_escape_hidden_from_the_example_fails_at_render(tmp_path: Path) -> None:
    document = prompt(
        messages=[{"content": "{% if who == 'x' %}{{ who.__class__.__mro__ }}{% endif %}ok"}]
    )
    entry = load_prompt(tmp_path, document)
    assert entry.render({"who": "y"}).messages[0].text == "ok"
    with pytest.raises(PromptRenderError, match="is unsafe") as caught:
        entry.render({"who": "x"})
    assert caught.value.prompt == "greet"
    assert not any(marker in caught.value.reason for marker in ("<class", "object at 0x"))


def test_a_template_that_fails_on_some_values_raises_a_render_error(tmp_path: Path) -> None:
    document = prompt(
        arguments=[argument("parts", "integer", required=True, minimum=0)],
        example={"parts": 4},
        messages=[{"content": "{{ 100 // parts }} each"}],
    )
    entry = load_prompt(tmp_path, document)
    assert entry.render({"parts": 4}).messages[0].text == "25 each"
    with pytest.raises(PromptRenderError, match="by zero") as caught:
        entry.render({"parts": 0})
    assert caught.value.prompt == "greet"


def test_rendered_output_is_stripped_of_surrounding_whitespace(tmp_path: Path) -> None:
    entry = load_prompt(tmp_path, prompt(messages=[{"content": "\n  Hello, {{ who }}!  \n\n"}]))
    assert entry.render({"who": "Ada"}).messages[0].text == "Hello, Ada!"


def test_each_message_keeps_its_role(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "Hi, I am {{ who }}."},
        {"role": "assistant", "content": "Hello, {{ who }}."},
    ]
    entry = load_prompt(tmp_path, prompt(messages=messages))
    rendered = entry.render({"who": "Ada"}).messages
    assert [(m.role, m.text) for m in rendered] == [
        ("user", "Hi, I am Ada."),
        ("assistant", "Hello, Ada."),
    ]
