"""``SqlGenerationRecords``: the ``GenerationRecords`` port, in the key store's database.

It shares the key store's engine, so records live in the same SQLite file or PostgreSQL
database as the keys, created by the same migrations, and start and stop with the store.
"""

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select

from domain.generation import Route
from domain.generation_records import (
    RECORD_FIELDS,
    GenerationOutcome,
    GenerationRecord,
    RecordQuery,
)
from infrastructure.keystore.schema import generation_records
from infrastructure.keystore.sql import SqlKeyStore, uncancellable

_table = generation_records
_columns = _table.c


def _row_values(record: GenerationRecord) -> dict[str, Any]:
    """The table's columns are the record's fields; enums store as their text."""
    values = record.field_values()
    if record.arguments is not None:
        values["arguments"] = json.dumps(values["arguments"], sort_keys=True)
    return values


def _record(row: Row[Any]) -> GenerationRecord:
    values = {name: getattr(row, name) for name in RECORD_FIELDS}
    values["route"] = Route(row.route) if row.route is not None else None
    values["outcome"] = GenerationOutcome(row.outcome)
    values["arguments"] = json.loads(row.arguments) if row.arguments is not None else None
    return GenerationRecord(**values)


class SqlGenerationRecords:
    """Generation records over the key store's connection pool; it must be started."""

    def __init__(self, store: SqlKeyStore) -> None:
        self._store = store

    @property
    def in_flight(self) -> set[asyncio.Task[Any]]:
        """The store's running operations: closing the store waits for records too."""
        return self._store.in_flight

    @uncancellable
    async def add(self, record: GenerationRecord) -> None:
        """Store a new record."""
        async with self._store.transaction("add a generation record", write=True) as connection:
            await connection.execute(insert(_table).values(_row_values(record)))

    @uncancellable
    async def get(self, record_id: str, *, user_id: str | None) -> GenerationRecord | None:
        """The record if it exists and is ``user_id``'s (anyone's for ``None``)."""
        query = select(_table).where(_columns.record_id == record_id)
        if user_id is not None:
            query = query.where(_columns.user_id == user_id)
        async with self._store.transaction("read a generation record", write=False) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(row)

    @uncancellable
    async def list(self, query: RecordQuery) -> Sequence[GenerationRecord]:
        """Newest first (ids sort by creation time), at most ``query.limit``."""
        statement = select(_table).order_by(_columns.record_id.desc()).limit(query.limit)
        if query.user_id is not None:
            statement = statement.where(_columns.user_id == query.user_id)
        if query.prompt is not None:
            statement = statement.where(_columns.prompt == query.prompt)
        if query.outcome is not None:
            statement = statement.where(_columns.outcome == query.outcome.value)
        if query.since is not None:
            statement = statement.where(_columns.created_at >= query.since)
        if query.before_id is not None:
            statement = statement.where(_columns.record_id < query.before_id)
        async with self._store.transaction("list generation records", write=False) as conn:
            rows = (await conn.execute(statement)).all()
        return [_record(row) for row in rows]

    @uncancellable
    async def purge(self, older_than: datetime) -> int:
        """Delete the records created before ``older_than``; how many went."""
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware")
        statement = delete(_table).where(_columns.created_at < older_than)
        async with self._store.transaction("purge generation records", write=True) as conn:
            result = await conn.execute(statement)
        return int(result.rowcount or 0)
