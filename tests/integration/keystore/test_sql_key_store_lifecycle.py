"""``SqlKeyStore`` start-up, schema versions and failures, on SQLite and PostgreSQL."""

import sqlite3
import threading
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Table, inspect
from sqlalchemy.engine import make_url

from domain.ports import KeyStoreUnavailable
from infrastructure.keystore.engine import driver_url
from infrastructure.keystore.schema import (
    LATEST_VERSION,
    api_keys,
    generation_records,
    schema_version,
)
from infrastructure.keystore.sql import SqlKeyStore
from tests.e2e.server import free_port
from tests.integration.keystore.postgres import PostgresCluster
from tests.integration.keystore.stored_keys import (
    NOW,
    key,
    opened,
    raw_connection,
    schema_versions,
    sqlite_threads_stopped,
)

pytestmark = pytest.mark.anyio


async def test_starting_again_leaves_the_schema_and_the_keys_as_they_were(
    store: SqlKeyStore, database_url: str
) -> None:
    await store.add(key(1))
    await store.start()
    async with opened(database_url) as second:
        assert await second.list() == [key(1)]
    assert await schema_versions(database_url) == list(range(1, LATEST_VERSION + 1))


async def test_several_stores_starting_at_once_migrate_the_database_once(
    database_url: str,
) -> None:
    stores = [SqlKeyStore(database_url) for _ in range(4)]
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for key_store in stores:
                    group.start_soon(key_store.start)
        await stores[0].add(key(1))
        assert await stores[-1].get(key(1).key_id) == key(1)
    finally:
        for key_store in stores:
            await key_store.close()
    assert await schema_versions(database_url) == list(range(1, LATEST_VERSION + 1))


@pytest.mark.parametrize("table", [api_keys, generation_records], ids=lambda t: t.name)
async def test_the_migrated_schema_is_the_one_the_queries_use(
    store: SqlKeyStore, database_url: str, table: Table
) -> None:
    async with raw_connection(database_url) as connection:
        columns, indexes = await connection.run_sync(
            lambda sync: (
                inspect(sync).get_columns(table.name),
                inspect(sync).get_indexes(table.name),
            )
        )
    assert [column["name"] for column in columns] == list(table.c.keys())
    assert sorted((index["name"], index["column_names"]) for index in indexes) == sorted(
        (index.name, [column.name for column in index.columns]) for index in table.indexes
    )


async def test_a_database_at_a_newer_schema_version_is_refused_and_left_alone(
    store: SqlKeyStore, database_url: str
) -> None:
    newer = LATEST_VERSION + 1
    async with raw_connection(database_url) as connection:
        await connection.execute(schema_version.insert().values(version=newer, applied_at=NOW))

    with pytest.raises(KeyStoreUnavailable, match=f"version {newer}.*version {LATEST_VERSION}"):
        await store.start()
    assert await schema_versions(database_url) == [*range(1, LATEST_VERSION + 1), newer]


EVERY_METHOD = [
    pytest.param(lambda store: store.start(), id="start"),
    pytest.param(lambda store: store.add(key(1)), id="add"),
    pytest.param(lambda store: store.get(key(1).key_id), id="get"),
    pytest.param(lambda store: store.list(user_id="ada"), id="list"),
    pytest.param(lambda store: store.revoke(key(1).key_id, NOW), id="revoke"),
    pytest.param(lambda store: store.rotate(key(1).key_id, key(2), NOW), id="rotate"),
    pytest.param(lambda store: store.update_hash(key(1).key_id, "hash"), id="update_hash"),
    pytest.param(lambda store: store.record_usage({key(1).key_id: NOW}), id="record_usage"),
]


@pytest.fixture(params=["sqlite-under-a-file", "postgresql-closed-port", "postgresql-no-database"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-under-a-file":
        (tmp_path / "a-file").write_text("not a directory", "utf-8")
        return f"sqlite:///{tmp_path / 'a-file' / 'keys.db'}"
    if request.param == "postgresql-closed-port":
        return f"postgresql://ctxfy@127.0.0.1:{free_port()}/keys"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.url("no_such_database")


@pytest.mark.parametrize("call", EVERY_METHOD)
async def test_an_unreachable_database_raises_key_store_unavailable_from_every_method(
    unreachable_url: str, call: Callable[[SqlKeyStore], Awaitable[object]]
) -> None:
    threads = set(threading.enumerate())
    key_store = SqlKeyStore(unreachable_url)
    try:
        with anyio.fail_after(30), pytest.raises(KeyStoreUnavailable) as caught:
            await call(key_store)
    finally:
        await key_store.close()
        await sqlite_threads_stopped(threads)
    assert type(caught.value) is KeyStoreUnavailable
    assert caught.value.__cause__ is not None
    assert str(caught.value).startswith("key store unavailable: cannot ")


async def test_a_sqlite_store_creates_its_directory_and_a_write_ahead_log(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "keys.db"
    async with opened(f"sqlite:///{path}") as key_store:
        await key_store.add(key(1))
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_sqlite_file_locked_by_another_writer_fails_start_only_while_locked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as other_process:
        other_process.execute("CREATE TABLE elsewhere (n INTEGER)")
        other_process.execute("BEGIN IMMEDIATE")
        other_process.execute("INSERT INTO elsewhere VALUES (1)")
        key_store = SqlKeyStore(f"sqlite:///{path}")
        try:
            with anyio.fail_after(30), pytest.raises(KeyStoreUnavailable, match="locked"):
                await key_store.start()
            other_process.execute("COMMIT")
            await key_store.start()
            await key_store.add(key(1))
        finally:
            await key_store.close()


async def test_a_sqlite_memory_store_keeps_keys_while_it_is_open() -> None:
    async with opened("sqlite:///:memory:") as key_store:
        await key_store.add(key(1))
        await key_store.ping()
        assert await key_store.list() == [key(1)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///keys.db", "sqlite+aiosqlite:///keys.db"),
        ("sqlite:////var/lib/ctxfy/keys.db", "sqlite+aiosqlite:////var/lib/ctxfy/keys.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("postgresql://u:pw@db:5432/ctxfy", "postgresql+psycopg://u:pw@db:5432/ctxfy"),
        ("postgres://u@db/ctxfy", "postgresql+psycopg://u@db/ctxfy"),
        ("postgresql+psycopg://u@db/ctxfy", "postgresql+psycopg://u@db/ctxfy"),
    ],
)
def test_a_plain_url_is_translated_to_its_async_driver(url: str, expected: str) -> None:
    assert driver_url(url) == make_url(expected)


@pytest.mark.parametrize("url", ["mysql://u@db/ctxfy", "postgresql+asyncpg://u@db/x", "keys.db"])
def test_a_url_for_another_database_or_driver_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="key store URL"):
        SqlKeyStore(url)


def test_a_store_shows_its_url_without_the_password() -> None:
    assert repr(SqlKeyStore("postgresql://ctxfy:s3cret@db/keys")) == (
        "SqlKeyStore('postgresql+psycopg://ctxfy:***@db/keys')"
    )


async def test_a_store_that_was_not_started_does_not_answer_pings(tmp_path: Path) -> None:
    key_store = SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    with pytest.raises(KeyStoreUnavailable, match="not started"):
        await key_store.ping()
    await key_store.start()
    await key_store.ping()
    await key_store.close()
    with pytest.raises(KeyStoreUnavailable, match="not started"):
        await key_store.ping()
