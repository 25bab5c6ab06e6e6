"""Generation records: sortable, unguessable ids and the invariants of a record."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.generation import Route
from domain.generation_records import (
    MAX_PAGE,
    RECORD_ID_LENGTH,
    GenerationOutcome,
    GenerationRecord,
    RecordPolicy,
    RecordQuery,
    is_record_id,
    new_record_id,
)
from tests.records_helpers import a_record

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def record(**changes: Any) -> GenerationRecord:
    fields: dict[str, Any] = {
        "created_at": AT,
        "route": Route.CLIENT,
        "provider": "mcp-sampling",
        "model": "client",
        "input_tokens": None,
        "output_tokens": None,
        "latency_ms": None,
    }
    return a_record(**(fields | changes))


def test_ids_sort_by_creation_time_across_milliseconds() -> None:
    instants = [AT + timedelta(milliseconds=ms) for ms in (0, 1, 999, 1000, 86_400_000)]
    ids = [new_record_id(at) for at in instants]
    assert ids == sorted(ids)
    assert all(len(i) == RECORD_ID_LENGTH and is_record_id(i) for i in ids)


def test_ids_made_at_one_instant_differ_in_their_random_part() -> None:
    ids = {new_record_id(AT) for _ in range(1000)}
    assert len(ids) == 1000
    assert len({i[:14] for i in ids}) == 1  # one time prefix


@pytest.mark.parametrize(
    "text",
    ["", "gen_", "gen_" + "0" * 25, "gen_" + "0" * 27, "gen_" + "I" * 26, "xyz_" + "0" * 26],
)
def test_anything_else_is_not_a_record_id(text: str) -> None:
    assert not is_record_id(text)


def test_a_record_refuses_inconsistent_facts() -> None:
    with pytest.raises(ValueError, match="not a record id"):
        record(record_id="gen_123")
    with pytest.raises(ValueError, match="timezone-aware"):
        record(created_at=AT.replace(tzinfo=None))
    with pytest.raises(ValueError, match="failure code"):
        record(outcome=GenerationOutcome.ERROR, document=None)
    with pytest.raises(ValueError, match="failure code"):
        record(failure="llm_timeout")
    with pytest.raises(ValueError, match="only a generation that succeeded"):
        record(outcome=GenerationOutcome.CANCELLED, failure="client_disconnected")
    with pytest.raises(ValueError, match="output_tokens"):
        record(output_tokens=-1)


def test_the_policy_decides_what_is_kept() -> None:
    full = record()
    assert full.kept_under(RecordPolicy.FULL) is full
    assert full.kept_under(RecordPolicy.OFF) is None
    metadata = full.kept_under(RecordPolicy.METADATA)
    assert metadata == replace(full, arguments=None, document=None)


def test_a_query_bounds_its_page_and_checks_its_cursor() -> None:
    assert RecordQuery(user_id=None, limit=MAX_PAGE).limit == MAX_PAGE
    for limit in (0, MAX_PAGE + 1):
        with pytest.raises(ValueError, match="limit"):
            RecordQuery(user_id=None, limit=limit)
    with pytest.raises(ValueError, match="cursor"):
        RecordQuery(user_id="ada", before_id="nope")
    with pytest.raises(ValueError, match="since"):
        RecordQuery(user_id="ada", since=AT.replace(tzinfo=None))
