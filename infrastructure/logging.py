"""Structured logging: structlog for our events, the same renderer for library loggers."""

import logging
import sys
import threading
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.processors import format_exc_info

from infrastructure.redaction import escape_control, redact


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _Sink:
    """Where rendered lines go. Loggers hold the sink, not the stream, so a cached logger
    follows a later ``configure_logging`` (another stream, in the CLI or a test)."""

    def __init__(self) -> None:
        self.stream: TextIO = sys.stdout
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


_SINK = _Sink()


class _SinkHandler(logging.Handler):
    """Writes library records, formatted by structlog, to the same sink as our events."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _SINK.write(self.format(record))
        except (OSError, ValueError):
            self.handleError(record)


class LineLogger:
    """A structlog logger that writes each rendered event as one line: our own events skip
    the standard library's records and handlers, which cost tens of microseconds a line."""

    def __init__(self, name: str) -> None:
        self.name = name  # read by structlog.stdlib.add_logger_name

    def msg(self, message: str) -> None:
        """Write one rendered event."""
        _SINK.write(message)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _line_logger(*args: Any) -> LineLogger:
    return LineLogger(str(args[0]) if args else "ctxfy")


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
    # Locals in tracebacks could carry credentials; they are never rendered.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    # Redaction runs last before rendering, so exception text is masked as well.
    tail: list[Any] = [format_exc_info, redact, escape_control] if console else [tracebacks, redact]
    _SINK.stream = stream
    structlog.configure(
        processors=[*shared, *tail, renderer],
        logger_factory=_line_logger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    # Library loggers (uvicorn, FastMCP, the SDK, httpx) keep the standard library and get
    # the same processors, redaction and renderer through this formatter.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = _SinkHandler()
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
