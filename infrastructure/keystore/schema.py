"""The key store's tables, and the ordered migrations that build them.

Each migration creates the shape its version had, with its own table definitions: the
module-level tables are the *current* shape the queries use, so a later migration that
changes them must not change what an earlier one creates.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.types import DateTime, TypeDecorator

from domain.ports import KeyStoreUnavailable

# pg_advisory_xact_lock key that serializes schema changes between processes
# (the ASCII of "ctxfyksm", as a signed 64-bit integer).
SCHEMA_LOCK_ID = 0x63747866796B736D


class UtcDateTime(TypeDecorator[datetime]):
    """An aware instant, stored in UTC and read back as an aware UTC ``datetime``.

    PostgreSQL keeps it as ``timestamptz``; SQLite as fixed-width UTC text, which sorts
    and compares in time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("instants stored in the key store must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("api_key_hash", Text, nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("name", String(100), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("replaced_by", String(16), ForeignKey("api_keys.key_id")),
    Index("ix_api_keys_user_id", "user_id"),
)


def _generation_records_v2(target: MetaData) -> Table:
    """The ``generation_records`` table as migration 2 creates it."""
    return Table(
        "generation_records",
        target,
        Column("record_id", String(30), primary_key=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("request_id", String(128)),
        Column("key_id", String(16)),
        Column("user_id", String(128)),
        Column("prompt", String(48), nullable=False),
        Column("prompt_version", String(32), nullable=False),
        Column("route", String(16)),
        Column("provider", String(64)),
        Column("model", String(256)),
        Column("outcome", String(16), nullable=False),
        Column("failure", String(64)),
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("latency_ms", Float),
        Column("arguments", Text),  # JSON, when the policy keeps content
        Column("document", Text),
        Index("ix_generation_records_user_id", "user_id", "record_id"),
        Index("ix_generation_records_created_at", "created_at"),
    )


# The current shape is still version 2's; a migration that changes it writes its own builder.
generation_records = _generation_records_v2(metadata)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: ``apply`` runs inside the migrating transaction."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_api_keys(connection: Connection) -> None:
    # Written out rather than taken from ``api_keys``: a migration must keep creating the
    # version-1 table after ``api_keys`` (the current shape) changes in a later version.
    # A test checks that migrating to the latest version yields what ``api_keys`` says.
    v1 = MetaData()
    Table(
        "api_keys",
        v1,
        Column("key_id", String(16), primary_key=True),
        Column("api_key_hash", Text, nullable=False),
        Column("user_id", String(128), nullable=False),
        Column("name", String(100), nullable=False),
        Column("scope", String(16), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("expires_at", UtcDateTime, nullable=False),
        Column("last_used_at", UtcDateTime),
        Column("revoked_at", UtcDateTime),
        Column("replaced_by", String(16), ForeignKey("api_keys.key_id")),
        Index("ix_api_keys_user_id", "user_id"),
    )
    v1.create_all(connection)


def _create_generation_records(connection: Connection) -> None:
    v2 = MetaData()
    _generation_records_v2(v2)
    v2.create_all(connection)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create api_keys", _create_api_keys),
    Migration(2, "create generation_records", _create_generation_records),
)
LATEST_VERSION = MIGRATIONS[-1].version


def migrate(connection: Connection, *, now: datetime) -> None:
    """Bring the schema to ``LATEST_VERSION``, inside the caller's transaction.

    On PostgreSQL the transaction takes an advisory lock first; on SQLite the caller's
    transaction must hold the write lock (``BEGIN IMMEDIATE``). Either way a second process
    starting at the same moment waits, then finds the work done.

    Raises:
        KeyStoreUnavailable: the database is at a version newer than this code knows.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
    schema_version.create(connection, checkfirst=True)
    current = connection.execute(select(func.max(schema_version.c.version))).scalar() or 0
    if current > LATEST_VERSION:
        raise KeyStoreUnavailable(
            f"the key store's schema is at version {current}, newer than version "
            f"{LATEST_VERSION} that this Ctxfy knows; upgrade Ctxfy to use this database"
        )
    for migration in MIGRATIONS:
        if migration.version > current:
            migration.apply(connection)
            connection.execute(
                insert(schema_version).values(version=migration.version, applied_at=now)
            )
