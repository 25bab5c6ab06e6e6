"""Which characters user text may carry: no control characters, no bidirectional overrides.

Control characters break logs and terminals; the bidi embeddings, overrides and isolates
(U+202A–U+202E, U+2066–U+2069) make text read differently from what it holds (the
"Trojan Source" trick). Free text may keep tab, newline and carriage return; names none.
"""

import re

# Character classes, written so Python, pydantic's Rust engine and JSON Schema readers agree.
_BIDI = "\\u202a-\\u202e\\u2066-\\u2069"
TEXT_PATTERN = f"^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f{_BIDI}]*$"
NAME_PATTERN = f"^[^\\x00-\\x1f\\x7f{_BIDI}]*$"
_TEXT = re.compile(TEXT_PATTERN)
_NAME = re.compile(NAME_PATTERN)


def is_safe_text(text: str) -> bool:
    """Whether free text (tab, newline and CR allowed) has no forbidden character."""
    return _TEXT.match(text) is not None


def is_safe_name(text: str) -> bool:
    """Whether a one-line name has no control or bidi character at all."""
    return _NAME.match(text) is not None


def escaped(text: str) -> str:
    """``text`` with every forbidden character shown as an escape, for printing."""
    return "".join(
        c if is_safe_name(c) else c.encode("unicode_escape").decode("ascii") for c in text
    )
