"""Async engines for the key store: URL translation, SQLite's connection set-up, errors."""

import asyncio
import sqlite3
import time
from typing import Any

import psycopg
from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from domain.ports import KeyStoreUnavailable

SQLITE_BUSY_TIMEOUT_MS = 5_000
POSTGRES_CONNECT_TIMEOUT_S = 10
DRIVER_ERRORS = (SQLAlchemyError, OSError, sqlite3.Error, psycopg.Error)
# Execution option that makes a SQLite transaction take the write lock at BEGIN, so a
# read-then-write transaction waits its turn instead of failing to upgrade its lock.
IMMEDIATE = "ctxfy_begin_immediate"
_MEMORY_DATABASES = {None, "", ":memory:"}


def driver_url(url: str) -> URL:
    """The SQLAlchemy async-driver URL for an operator's plain ``sqlite:``/``postgresql:`` URL.

    Raises:
        ValueError: the URL cannot be parsed or names another database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError("the key store URL cannot be parsed") from exc
    match parsed.drivername:
        case "sqlite" | "sqlite+aiosqlite":
            return parsed.set(drivername="sqlite+aiosqlite")
        case "postgresql" | "postgres" | "postgresql+psycopg":
            return parsed.set(drivername="postgresql+psycopg")
        case other:
            raise ValueError(
                f"unsupported key store URL scheme {other!r}: use sqlite:///path or postgresql://"
            )


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names; ``None`` for PostgreSQL or a memory database."""
    if url.get_backend_name() != "sqlite" or url.database in _MEMORY_DATABASES:
        return None
    return url.database


def _on_sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # SQLAlchemy, not the sqlite3 module, decides when transactions begin (_on_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: URL, pool_size: int) -> AsyncEngine:
    """An engine whose connections are ready for the key store's queries."""
    if url.get_backend_name() == "postgresql":
        return create_async_engine(
            url,
            pool_size=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
        )
    # A memory database lives in one connection, so SQLAlchemy gives it a StaticPool.
    sizing = {"pool_size": pool_size} if sqlite_file(url) else {}
    engine = create_async_engine(url, hide_parameters=True, **sizing)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _journal_mode_wal(connection: Connection) -> str:
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # None only once invalidated
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
        row = cursor.fetchone()
        return str(row[0]) if row else ""
    finally:
        cursor.close()


async def use_write_ahead_log(engine: AsyncEngine) -> None:
    """Switch a SQLite file to write-ahead logging (the file keeps the mode).

    SQLite refuses the switch at once, without waiting out its busy timeout, while another
    connection writes, as when two processes start on a new file; so it is retried, for as
    long as that timeout.

    Raises:
        KeyStoreUnavailable: the switch did not succeed in time.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    async with engine.connect() as connection:
        while True:
            try:
                mode = await connection.run_sync(_journal_mode_wal)
                break
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                if time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)
    if mode != "wal":
        raise KeyStoreUnavailable(f"SQLite kept journal mode {mode!r} instead of 'wal'")


def unavailable(action: str, exc: BaseException) -> KeyStoreUnavailable:
    """The error for a failed ``action``, with the driver's message as detail.

    Never SQLAlchemy's own message, which quotes the statement.
    """
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    detail = lines[0] if lines else type(cause).__name__
    return KeyStoreUnavailable(f"key store unavailable: cannot {action}: {detail}")
