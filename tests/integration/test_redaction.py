"""Credentials are masked in log lines by field name and by their look."""

import io
import json
from typing import Literal

import pytest
import structlog

from domain.keys import generate_key
from infrastructure.logging import configure_logging
from infrastructure.redaction import MASK, redact_text

KEY = generate_key().plaintext


def logged(fmt: Literal["json", "console"] = "json", /, **fields: object) -> str:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt=fmt, stream=stream, tty=fmt == "console")
    structlog.get_logger("ctxfy.test").info("event", **fields)
    return stream.getvalue()


@pytest.mark.parametrize(
    "name", ["authorization", "Authorization", "X-API-KEY", "api_key", "Password", "token"]
)
def test_a_sensitive_field_is_masked_whatever_its_case(name: str) -> None:
    out = logged(**{name: "s3cr3t-value"})
    assert "s3cr3t-value" not in out
    assert json.loads(out)[name] == MASK


def test_sensitive_fields_are_masked_at_any_depth() -> None:
    out = logged(request={"headers": {"Authorization": "Bearer abc", "Accept": "*/*"}})
    headers = json.loads(out)["request"]["headers"]
    assert headers == {"Authorization": MASK, "Accept": "*/*"}


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        (f"key={KEY} trailing", KEY.split("_")[2]),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("postgresql://ctxfy:hunter2@db:5432/keys", "hunter2"),
        (f"in a list [{KEY}]", KEY.split("_")[2]),
    ],
)
def test_credentials_are_masked_inside_any_text(text: str, hidden: str) -> None:
    assert hidden not in redact_text(text)
    assert hidden not in logged(note=text, nested=[{"value": text}])


def test_a_masked_key_keeps_its_public_id_for_correlation() -> None:
    key_id = KEY.split("_")[1]
    assert redact_text(KEY) == f"ctxfy_{key_id}_{MASK}"


def test_an_exception_message_carrying_a_key_is_masked() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    try:
        raise ValueError(f"could not use {KEY}")
    except ValueError:
        structlog.get_logger("ctxfy.test").exception("failed")
    assert KEY.split("_")[2] not in stream.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_line_breaks_and_escapes_cannot_forge_a_log_line(
    fmt: Literal["json", "console"],
) -> None:
    forged = 'x\n{"event":"request","status":200}\r\x1b[2Jdone'
    out = logged(fmt, path=forged)
    assert out.count("\n") == 1
    assert "\x1b[2J" not in out.replace("\\x1b", "")
