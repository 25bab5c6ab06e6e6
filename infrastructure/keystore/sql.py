"""``SqlKeyStore``: the ``KeyStore`` port over SQLite (default) or PostgreSQL.

SQLAlchemy Core on an async engine: ``aiosqlite`` for ``sqlite:///path``, ``psycopg`` for
``postgresql://…``. Driver errors never leave this package: they become
``KeyStoreUnavailable``, or ``DuplicateKeyId`` when a key id is taken.
"""

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, Protocol

from sqlalchemy import Row, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

from domain.keys import ApiKeyInfo, KeyConflict, KeyNotFound, Scope, rotated_already
from domain.ports import DuplicateKeyId, KeyStoreUnavailable
from infrastructure.keystore.engine import (
    DRIVER_ERRORS,
    IMMEDIATE,
    create_engine,
    driver_url,
    sqlite_file,
    unavailable,
    use_write_ahead_log,
)
from infrastructure.keystore.schema import UtcDateTime, api_keys, migrate

CLOSE_WAIT_S = 30


def _aware(moment: datetime, label: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{label} must be timezone-aware")
    return moment


def _info(row: Row[Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        api_key_hash=row.api_key_hash,
        user_id=row.user_id,
        name=row.name,
        scope=Scope(row.scope),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        replaced_by=row.replaced_by,
    )


class _TracksTasks(Protocol):
    """An adapter whose operations ``close()`` of the key store waits for."""

    @property
    def in_flight(self) -> set[asyncio.Task[Any]]: ...


type _Method[S: _TracksTasks, **P, T] = Callable[Concatenate[S, P], Coroutine[Any, Any, T]]


def uncancellable[S: _TracksTasks, **P, T](method: _Method[S, P, T]) -> _Method[S, P, T]:
    """Let an operation finish even when its caller is cancelled.

    SQLAlchemy discards a connection whose operation is cancelled, and with aiosqlite that
    can leave a task waiting forever, so the process never shuts down. The caller stops
    waiting at once; the operation, bounded by the database timeouts, runs to its end, and
    ``close()`` waits for it.
    """

    @functools.wraps(method)
    async def run(adapter: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.create_task(method(adapter, *args, **kwargs))
        adapter.in_flight.add(task)
        task.add_done_callback(adapter.in_flight.discard)
        return await asyncio.shield(task)

    return run


class SqlKeyStore:
    """API keys in one SQL table, versioned by ``schema_version``.

    Args:
        url: ``sqlite:///path/to/keys.db`` (``sqlite:///:memory:`` for tests) or
            ``postgresql://user:password@host:port/database``.
        pool_size: connections kept open (ignored for a memory database).

    Raises:
        ValueError: the URL is not a SQLite or PostgreSQL URL.
    """

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self._url = driver_url(url)
        self._engine = create_engine(self._url, pool_size)
        self._writer = self._engine.execution_options(**{IMMEDIATE: True})
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._started = False

    def __repr__(self) -> str:
        return f"SqlKeyStore({self._url.render_as_string(hide_password=True)!r})"

    @property
    def in_flight(self) -> set[asyncio.Task[Any]]:
        """Operations running now, which ``close()`` waits for (records' too)."""
        return self._in_flight

    @asynccontextmanager
    async def transaction(self, action: str, *, write: bool) -> AsyncIterator[AsyncConnection]:
        """A transaction on the store's database, writing ones under SQLite's write lock;
        driver errors become ``KeyStoreUnavailable`` naming ``action``."""
        try:
            async with (self._writer if write else self._engine).begin() as connection:
                yield connection
        except DRIVER_ERRORS as exc:
            raise unavailable(action, exc) from exc

    def _insert_new(self, info: ApiKeyInfo) -> ReturningInsert[tuple[str]]:
        values = {
            "key_id": info.key_id,
            "api_key_hash": info.api_key_hash,
            "user_id": info.user_id,
            "name": info.name,
            "scope": info.scope.value,
            "created_at": info.created_at,
            "expires_at": info.expires_at,
            "last_used_at": info.last_used_at,
            "revoked_at": info.revoked_at,
            "replaced_by": info.replaced_by,
        }
        key_id = api_keys.c.key_id
        if self._url.get_backend_name() == "postgresql":
            pg_insert = postgresql.insert(api_keys).values(values)
            return pg_insert.on_conflict_do_nothing(index_elements=[key_id]).returning(key_id)
        lite_insert = sqlite.insert(api_keys).values(values)
        return lite_insert.on_conflict_do_nothing(index_elements=[key_id]).returning(key_id)

    async def _read(self, connection: AsyncConnection, key_id: str) -> ApiKeyInfo | None:
        row = (await connection.execute(api_keys.select().filter_by(key_id=key_id))).first()
        return None if row is None else _info(row)

    async def _add(self, connection: AsyncConnection, info: ApiKeyInfo) -> None:
        # RETURNING, not rowcount: SQLAlchemy does not promise an INSERT's rowcount.
        inserted = (await connection.execute(self._insert_new(info))).first()
        if inserted is None:
            raise DuplicateKeyId(info.key_id)

    @uncancellable
    async def start(self) -> None:
        """Create the database (and a SQLite file's directory) and migrate it to the latest
        schema; safe when several processes start at once.

        Raises:
            KeyStoreUnavailable: the database cannot be reached or created, or its schema is
                newer than this code knows.
        """
        path = sqlite_file(self._url)
        if path is not None:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                await use_write_ahead_log(self._engine)
            except DRIVER_ERRORS as exc:
                raise unavailable("open the database", exc) from exc
        async with self.transaction("migrate the schema", write=True) as connection:
            await connection.run_sync(migrate, now=datetime.now(UTC))
        self._started = True

    async def close(self) -> None:
        """Wait for operations still running (bounded), then close every pooled connection."""
        self._started = False
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=CLOSE_WAIT_S)
        try:
            await self._engine.dispose()
        except DRIVER_ERRORS as exc:
            raise unavailable("close", exc) from exc

    @uncancellable
    async def ping(self) -> None:
        """Run ``SELECT 1``; a store that was not started (or was closed) is unavailable."""
        if not self._started:
            raise KeyStoreUnavailable("key store unavailable: not started")
        async with self.transaction("answer a ping", write=False) as connection:
            await connection.execute(select(1))

    @uncancellable
    async def add(self, info: ApiKeyInfo) -> None:
        """Store a new key.

        Raises:
            DuplicateKeyId: a key with this key id is already stored.
        """
        async with self.transaction("add a key", write=True) as connection:
            await self._add(connection, info)

    @uncancellable
    async def get(self, key_id: str) -> ApiKeyInfo | None:
        """The key with ``key_id``, or ``None``."""
        async with self.transaction("read a key", write=False) as connection:
            return await self._read(connection, key_id)

    @uncancellable
    async def list(self, *, user_id: str | None = None) -> Sequence[ApiKeyInfo]:
        """Every key (of one user, if given), newest first; ties by key id, descending."""
        query = api_keys.select().order_by(api_keys.c.created_at.desc(), api_keys.c.key_id.desc())
        if user_id is not None:
            query = query.filter_by(user_id=user_id)
        async with self.transaction("list keys", write=False) as connection:
            rows = (await connection.execute(query)).all()
        return [_info(row) for row in rows]

    @uncancellable
    async def revoke(self, key_id: str, at: datetime) -> ApiKeyInfo | None:
        """Revoke a key at ``at``; revoking again keeps the first instant. ``None`` if unknown."""
        _aware(at, "revocation time")
        async with self.transaction("revoke a key", write=True) as connection:
            await connection.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            return await self._read(connection, key_id)

    @uncancellable
    async def rotate(self, old_key_id: str, new: ApiKeyInfo, old_expires_at: datetime) -> None:
        """In one transaction: add ``new``, make the old key expire at ``old_expires_at`` and
        name ``new`` as its replacement. On any error nothing changes.

        Raises:
            DuplicateKeyId: ``new``'s key id is already stored.
            KeyNotFound: there is no key ``old_key_id``.
            KeyConflict: the old key was revoked or rotated (perhaps since the caller read it).
        """
        _aware(old_expires_at, "old key's expiry")
        async with self.transaction("rotate a key", write=True) as connection:
            await self._add(connection, new)
            result = await connection.execute(
                update(api_keys)
                .where(
                    api_keys.c.key_id == old_key_id,
                    api_keys.c.revoked_at.is_(None),
                    api_keys.c.replaced_by.is_(None),
                )
                .values(expires_at=old_expires_at, replaced_by=new.key_id)
            )
            if result.rowcount == 0:
                old = await self._read(connection, old_key_id)
                if old is None:
                    raise KeyNotFound(old_key_id)
                if old.replaced_by is not None:
                    raise KeyConflict(rotated_already(old_key_id, old.replaced_by))
                raise KeyConflict(f"key {old_key_id} is revoked and cannot be rotated")

    @uncancellable
    async def update_hash(self, key_id: str, api_key_hash: str) -> None:
        """Replace a key's hash; an unknown key id changes nothing."""
        async with self.transaction("update a key's hash", write=True) as connection:
            await connection.execute(
                update(api_keys).filter_by(key_id=key_id).values(api_key_hash=api_key_hash)
            )

    @uncancellable
    async def record_usage(self, last_used: Mapping[str, datetime]) -> None:
        """Set ``last_used_at`` for many keys in one statement, never moving it backwards;
        unknown key ids are ignored."""
        if not last_used:
            return
        # One order for every batch, so two concurrent batches cannot deadlock on row locks.
        rows = [
            {"used_key_id": key_id, "used_at": _aware(moment, "last use")}
            for key_id, moment in sorted(last_used.items())
        ]
        used_at = bindparam("used_at", type_=UtcDateTime())
        statement = (
            update(api_keys)
            .where(
                api_keys.c.key_id == bindparam("used_key_id"),
                or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < used_at),
            )
            .values(last_used_at=used_at)
        )
        async with self.transaction("record key usage", write=True) as connection:
            await connection.execute(statement, rows)
