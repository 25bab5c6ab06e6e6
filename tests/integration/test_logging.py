"""One JSON pipeline for our events and for library loggers."""

import json
import logging

import pytest
import structlog

from infrastructure.logging import configure_logging


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_our_events_and_library_records_are_one_json_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="INFO", fmt="json")
    structlog.get_logger("ctxfy.test").info("prompt_rendered", prompt="adr")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)

    first, second = lines(capsys.readouterr().out)
    assert first["event"] == "prompt_rendered"
    assert first["prompt"] == "adr"
    assert first["level"] == "info"
    assert str(first["timestamp"]).endswith("Z")
    assert second["event"] == "Started server process [42]"
    assert second["logger"] == "uvicorn.error"


def test_fastmcp_and_sdk_info_is_quiet_but_their_warnings_reach_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="INFO", fmt="json")
    logging.getLogger("mcp.server.streamable_http_manager").info("Created new transport")
    logging.getLogger("fastmcp.server").warning("something to look at")

    (only,) = lines(capsys.readouterr().out)
    assert only["event"] == "something to look at"
    assert only["level"] == "warning"


def test_a_traceback_is_structured_and_carries_no_local_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="INFO", fmt="json")
    secret = "ctxfy_local_value_that_must_not_leak"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("ctxfy.test").exception("failed", length=len(secret))

    out = capsys.readouterr().out
    (record,) = lines(out)
    assert record["event"] == "failed"
    assert isinstance(record["exception"], list)
    assert secret not in out


def test_console_rendering_is_used_only_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", fmt="console", tty=False)
    structlog.get_logger("ctxfy.test").info("plain")
    assert lines(capsys.readouterr().out)[0]["event"] == "plain"

    configure_logging(level="INFO", fmt="console", tty=True)
    structlog.get_logger("ctxfy.test").info("pretty")
    out = capsys.readouterr().out
    assert "pretty" in out
    assert not out.lstrip().startswith("{")
