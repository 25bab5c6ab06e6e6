"""Fixtures: one PostgreSQL cluster per session, a fresh database (or SQLite file) per test."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from infrastructure.keystore.sql import SqlKeyStore
from tests.integration.keystore.postgres import PostgresCluster, fresh_database, temporary_cluster

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    with temporary_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    with fresh_database(postgres_cluster) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend; PostgreSQL starts only when a test asks for it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'keys.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlKeyStore]:
    key_store = SqlKeyStore(database_url)
    await key_store.start()
    try:
        yield key_store
    finally:
        await key_store.close()
