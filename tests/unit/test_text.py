"""Which characters user text may carry, and how forbidden ones are printed."""

import pytest

from domain.text import escaped, is_safe_name, is_safe_text

FORBIDDEN = ["\x00", "\x07", "\x1b", "\x7f", "\u202a", "\u202e", "\u2066", "\u2069"]


@pytest.mark.parametrize("character", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_control_and_bidi_characters_are_refused_in_text_and_names(character: str) -> None:
    assert not is_safe_text(f"plain {character} text")
    assert not is_safe_name(f"name{character}")


def test_free_text_may_keep_tabs_newlines_and_carriage_returns_but_names_may_not() -> None:
    assert is_safe_text("line one\n\tline two\r\n")
    assert not is_safe_name("two\nlines")
    assert not is_safe_name("tab\tbed")


def test_ordinary_unicode_is_welcome() -> None:
    assert is_safe_text("Ünïcödé — “quotes”, 日本語, emoji 🚀, right-to-left עברית")
    assert is_safe_name("laptop – Ada’s")


def test_forbidden_characters_print_as_escapes_and_the_rest_as_is() -> None:
    assert escaped("evil\u202etxt.exe\x00") == "evil\\u202etxt.exe\\x00"
    assert escaped("ci pipeline") == "ci pipeline"
