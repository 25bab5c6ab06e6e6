"""Shared fixtures: process-wide logging is restored after every test; settings can be
made hermetic."""

import logging
import os
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def hermetic_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings see neither the developer's ``CTXFY_`` variables nor a ``.env`` file.

    The key store defaults to ./ctxfy.db, so each test gets its own database in its
    tmp_path; cheap argon2 keeps first-use verification fast (production costs are tested
    in the authenticator's and the CLI's tests).
    """
    for name in [n for n in os.environ if n.startswith("CTXFY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CTXFY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("CTXFY_ARGON2_MEMORY_COST_KIB", "1024")
