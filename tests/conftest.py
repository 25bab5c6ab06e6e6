"""Every test leaves process-wide logging as it found it."""

import logging
from collections.abc import Iterator

import pytest
import structlog

import infrastructure.logging as logging_setup


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``configure_logging`` (called by the CLI and some tests) changes global state."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "fastmcp", "mcp", "httpx")
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    config = structlog.get_config()
    sink_stream = logging_setup._SINK.stream
    yield
    logging_setup._SINK.stream = sink_stream
    root.handlers[:], level = saved_root
    root.setLevel(level)
    for name, (handlers, lvl, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(lvl)
        logger.propagate = propagate
    structlog.configure(**config)
