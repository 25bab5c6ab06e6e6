"""Generation records in the key store's database, on SQLite and on a real PostgreSQL."""

import threading
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest

from domain.generation_records import (
    GenerationOutcome,
    GenerationRecord,
    RecordPolicy,
    RecordQuery,
    new_record_id,
)
from domain.ports import KeyStoreUnavailable
from infrastructure.keystore.records import SqlGenerationRecords
from infrastructure.keystore.sql import SqlKeyStore
from tests.integration.keystore.stored_keys import sqlite_threads_stopped
from tests.records_helpers import a_record

pytestmark = pytest.mark.anyio

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
_serial = count(1)


def record(
    *,
    user_id: str = "ada",
    at: datetime = START,
    prompt: str = "prp",
    outcome: GenerationOutcome = GenerationOutcome.OK,
) -> GenerationRecord:
    ok = outcome is GenerationOutcome.OK
    return a_record(
        created_at=at,
        user_id=user_id,
        prompt=prompt,
        prompt_version="1.2.0",
        outcome=outcome,
        failure=None if ok else "llm_timeout",
        input_tokens=12 if ok else None,
        output_tokens=34 if ok else None,
        latency_ms=56.7,
        arguments={"feature": "Export, with ünïcode", "depth": 3, "strict": True, "notes": None},
        document="# The document" if ok else None,
    )


@pytest.fixture
def records(store: SqlKeyStore) -> SqlGenerationRecords:
    return SqlGenerationRecords(store)


async def test_a_record_reads_back_exactly_as_written(records: SqlGenerationRecords) -> None:
    written = record()
    await records.add(written)
    assert await records.get(written.record_id, user_id="ada") == written
    assert await records.get(written.record_id, user_id=None) == written


async def test_another_users_record_is_not_found(records: SqlGenerationRecords) -> None:
    written = record(user_id="ada")
    await records.add(written)
    assert await records.get(written.record_id, user_id="grace") is None
    assert await records.get(new_record_id(START), user_id=None) is None


async def test_a_record_without_content_keeps_none(records: SqlGenerationRecords) -> None:
    failed = record(outcome=GenerationOutcome.ERROR)
    bare = failed.kept_under(RecordPolicy.METADATA)
    assert bare is not None
    await records.add(bare)
    read = await records.get(bare.record_id, user_id=None)
    assert read is not None
    assert (read.arguments, read.document, read.failure) == (None, None, "llm_timeout")


async def test_listing_is_newest_first_owner_scoped_and_pages_by_cursor(
    records: SqlGenerationRecords,
) -> None:
    mine = [record(at=START + timedelta(minutes=i)) for i in range(5)]
    theirs = record(user_id="grace", at=START + timedelta(minutes=2, seconds=30))
    for written in [*mine, theirs]:
        await records.add(written)

    first = await records.list(RecordQuery(user_id="ada", limit=2))
    assert [r.record_id for r in first] == [mine[4].record_id, mine[3].record_id]
    second = await records.list(RecordQuery(user_id="ada", limit=2, before_id=first[-1].record_id))
    assert [r.record_id for r in second] == [mine[2].record_id, mine[1].record_id]
    everyone = await records.list(RecordQuery(user_id=None, limit=100))
    assert len(everyone) == 6
    assert everyone[2] == theirs


async def test_listing_filters_by_prompt_outcome_and_time(records: SqlGenerationRecords) -> None:
    old = record(at=START)
    failed = record(at=START + timedelta(hours=1), outcome=GenerationOutcome.CANCELLED)
    other = record(at=START + timedelta(hours=2), prompt="adr")
    for written in (old, failed, other):
        await records.add(written)

    def ids(found: object) -> list[str]:
        return [r.record_id for r in found]  # type: ignore[attr-defined]  # a sequence of records

    assert ids(await records.list(RecordQuery(user_id="ada", prompt="adr"))) == [other.record_id]
    cancelled = RecordQuery(user_id="ada", outcome=GenerationOutcome.CANCELLED)
    assert ids(await records.list(cancelled)) == [failed.record_id]
    recent = RecordQuery(user_id="ada", since=START + timedelta(minutes=30))
    assert ids(await records.list(recent)) == [other.record_id, failed.record_id]


async def test_purging_deletes_only_records_older_than_the_cutoff(
    records: SqlGenerationRecords,
) -> None:
    days = [record(at=START - timedelta(days=d)) for d in (40, 31, 29, 0)]
    for written in days:
        await records.add(written)
    assert await records.purge(START - timedelta(days=30)) == 2
    kept = await records.list(RecordQuery(user_id=None))
    assert [r.record_id for r in kept] == [days[3].record_id, days[2].record_id]
    assert await records.purge(START - timedelta(days=30)) == 0


async def test_a_database_that_cannot_be_used_makes_records_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    threads = set(threading.enumerate())
    store = SqlKeyStore(f"sqlite:///{blocker / 'keys.db'}")
    records = SqlGenerationRecords(store)
    try:
        for operation in (
            records.add(record()),
            records.get(new_record_id(START), user_id=None),
            records.list(RecordQuery(user_id=None)),
            records.purge(START),
        ):
            with pytest.raises(KeyStoreUnavailable):
                await operation
    finally:
        await store.close()
        await sqlite_threads_stopped(threads)
