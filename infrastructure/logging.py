"""Structured logging: structlog for our events, the same renderer for library loggers."""

import logging
import sys
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.processors import format_exc_info

from infrastructure.redaction import escape_control, redact


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    *,
    level: str = "INFO",
    fmt: Literal["json", "console"] = "json",
    tty: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send every log line, ours and the libraries', through one structlog pipeline.

    Lines go to ``stream`` (stdout by default). Console rendering is used only when asked
    for and the stream is a terminal.
    """
    stream = stream or sys.stdout
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    console = fmt == "console" and (stream.isatty() if tty is None else tty)
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if console
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Locals in tracebacks could carry credentials; they are never rendered.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    # Redaction runs last before rendering, so exception text is masked as well.
    tail: list[Any] = [format_exc_info, redact, escape_control] if console else [tracebacks, redact]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "fastmcp", "mcp", "httpx"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    # The application writes one access line per request itself (app.observability).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    # FastMCP and the SDK log every session at INFO; their warnings and errors still reach us.
    for name in ("fastmcp", "mcp"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
