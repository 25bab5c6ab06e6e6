"""Keys, instants and direct database access shared by the key-store tests."""

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from domain.keys import ApiKeyInfo, Scope
from infrastructure.keystore.engine import driver_url
from infrastructure.keystore.schema import schema_version
from infrastructure.keystore.sql import SqlKeyStore

NOW = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
NAIVE = NOW.replace(tzinfo=None)
EAST = timezone(timedelta(hours=5, minutes=30))


def key(number: int, *, user_id: str = "ada", created_at: datetime = NOW) -> ApiKeyInfo:
    """Key number ``number`` (its id is the number in hex), valid for 90 days."""
    key_id = f"{number:016x}"
    return ApiKeyInfo(
        key_id=key_id,
        api_key_hash=f"$argon2id$v=19$m=65536,t=3,p=4$salt${key_id}",
        user_id=user_id,
        name=f"key {number}",
        scope=Scope.READ,
        created_at=created_at,
        expires_at=created_at + timedelta(days=90),
    )


@asynccontextmanager
async def raw_connection(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection that bypasses the store, to look at or tamper with its database."""
    engine = create_async_engine(driver_url(url))
    try:
        async with engine.begin() as connection:
            yield connection
    finally:
        await engine.dispose()


async def schema_versions(url: str) -> list[int]:
    """The versions recorded in ``schema_version``, oldest first."""
    async with raw_connection(url) as connection:
        result = await connection.execute(select(schema_version.c.version).order_by("version"))
        return list(result.scalars())


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[SqlKeyStore]:
    """A started store, closed afterwards."""
    key_store = SqlKeyStore(url)
    try:
        await key_store.start()
        yield key_store
    finally:
        await key_store.close()


async def sqlite_threads_stopped(before: set[threading.Thread]) -> None:
    """Wait for the aiosqlite worker threads started since ``before`` to end, while the
    event loop still runs.

    aiosqlite 0.22 stops the thread of a connection that failed to open without waiting for
    it; if the test's loop closes first, the thread fails reporting back to it. Threads of
    other, still open connections (other tests', other stores') are left alone.
    """
    for thread in set(threading.enumerate()) - before:
        if thread.name.endswith("(_connection_worker_thread)"):
            await anyio.to_thread.run_sync(thread.join, 10)
            assert not thread.is_alive()
