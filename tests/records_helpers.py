"""Generation records for tests: one successful server-side generation, any field changed."""

from datetime import UTC, datetime
from itertools import count
from typing import Any

from domain.generation import Route
from domain.generation_records import GenerationOutcome, GenerationRecord, new_record_id

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
_serial = count(1)


def record_id_at(at: datetime) -> str:
    """A new id for a record made at ``at``; ids made at one instant still differ."""
    return new_record_id(at, random_bits=lambda _: next(_serial))


def a_record(*, created_at: datetime = AT, **changes: Any) -> GenerationRecord:
    """A finished generation's record, as the generator writes it, made at ``created_at``,
    with ``changes`` in place of the defaults (its id follows ``created_at`` unless given)."""
    fields: dict[str, Any] = {
        "record_id": record_id_at(created_at),
        "created_at": created_at,
        "request_id": "req-1",
        "key_id": "0123456789abcdef",
        "user_id": "ada",
        "prompt": "context_stack",
        "prompt_version": "1.0.0",
        "route": Route.SERVER,
        "provider": "openai-compatible",
        "model": "gpt-test",
        "outcome": GenerationOutcome.OK,
        "input_tokens": 120,
        "output_tokens": 30,
        "latency_ms": 12.5,
        "arguments": {"task": "Rotate the signing keys."},
        "document": "# The document",
    }
    return GenerationRecord(**(fields | changes))
