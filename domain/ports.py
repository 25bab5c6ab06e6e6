"""Ports: the protocols adapters implement. Each has real adapters and an honest fake."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from domain.errors import CtxfyError
from domain.generation_records import GenerationRecord, RecordQuery
from domain.keys import ApiKeyInfo


class KeyStoreUnavailable(CtxfyError):
    """The key store cannot be reached or answered with an error."""

    code = "key_store_unavailable"


class DuplicateKeyId(CtxfyError):
    """A key with this key id is already stored."""

    code = "duplicate_key_id"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"a key with id {key_id} is already stored")
        self.key_id = key_id


class KeyStore(Protocol):
    """Where API keys are kept (the seeds' ``AuthRepositoryPort``).

    Adapters: ``SqlKeyStore`` over SQLite (default) or PostgreSQL. Every method raises
    ``KeyStoreUnavailable`` when the database cannot be used.
    """

    async def start(self) -> None:
        """Connect, and create or migrate the schema to the current version."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Prove the store answers a trivial query (readiness)."""

    async def add(self, info: ApiKeyInfo) -> None:
        """Store a new key; raises ``DuplicateKeyId`` if its key id is taken."""

    async def get(self, key_id: str) -> ApiKeyInfo | None:
        """The key with ``key_id``, or ``None``."""

    async def list(self, *, user_id: str | None = None) -> Sequence[ApiKeyInfo]:
        """Every key (of one user, if given), newest first."""

    async def revoke(self, key_id: str, at: datetime) -> ApiKeyInfo | None:
        """Mark a key revoked at ``at`` (idempotent); ``None`` if there is no such key."""

    async def rotate(self, old_key_id: str, new: ApiKeyInfo, old_expires_at: datetime) -> None:
        """In one transaction: add ``new``, and make the old key expire at ``old_expires_at``
        and point to ``new`` as its replacement."""

    async def update_hash(self, key_id: str, api_key_hash: str) -> None:
        """Replace a key's hash (re-hashing with new parameters)."""

    async def record_usage(self, last_used: Mapping[str, datetime]) -> None:
        """Set ``last_used_at`` for many keys at once (written off the request path)."""


class GenerationRecords(Protocol):
    """Where generation records are kept, in the key store's database.

    Adapter: ``SqlGenerationRecords``. Every method raises ``KeyStoreUnavailable`` when the
    database cannot be used; the generation service counts that and carries on.
    """

    async def add(self, record: GenerationRecord) -> None:
        """Store a new record."""

    async def get(self, record_id: str, *, user_id: str | None) -> GenerationRecord | None:
        """The record ``record_id`` if it exists and belongs to ``user_id`` (any user's when
        ``user_id`` is ``None``), else ``None``: another user's record is not found."""

    async def list(self, query: RecordQuery) -> Sequence[GenerationRecord]:
        """The records ``query`` asks for, newest first."""

    async def purge(self, older_than: datetime) -> int:
        """Delete records created before ``older_than``; how many were deleted."""
