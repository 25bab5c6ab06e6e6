"""The generation recorder: policy, redaction, retention, and a store that fails or stalls."""

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from app.services.generation_records import GenerationRecorder
from domain.generation_records import (
    GenerationRecord,
    RecordPolicy,
    RecordQuery,
)
from domain.ports import KeyStoreUnavailable
from infrastructure.keystore.records import SqlGenerationRecords
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.metrics import Metrics
from tests.records_helpers import a_record

pytestmark = pytest.mark.anyio

KEY = "ctxfy_0123456789abcdef_" + "A" * 32


class Clock:
    """Wall-clock time the test moves by hand."""

    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


class BrokenRecords:
    """A store that is down."""

    async def add(self, record: GenerationRecord) -> None:
        raise KeyStoreUnavailable("database unreachable")

    async def get(self, record_id: str, *, user_id: str | None) -> GenerationRecord | None:
        raise KeyStoreUnavailable("database unreachable")

    async def list(self, query: RecordQuery) -> Sequence[GenerationRecord]:
        raise KeyStoreUnavailable("database unreachable")

    async def purge(self, older_than: datetime) -> int:
        raise KeyStoreUnavailable("database unreachable")


class StalledRecords(BrokenRecords):
    """A store that never answers a write."""

    async def add(self, record: GenerationRecord) -> None:
        await anyio.Event().wait()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(version="test")


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[SqlGenerationRecords]:
    store = SqlKeyStore(f"sqlite:///{tmp_path / 'ctxfy.db'}")
    await store.start()
    yield SqlGenerationRecords(store)
    await store.close()


def counted(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value("ctxfy_generation_records_total", {"outcome": outcome})


def record(recorder: GenerationRecorder) -> GenerationRecord:
    return a_record(
        record_id=recorder.new_id(),
        created_at=recorder.now(),
        request_id="req-7",
        arguments={"feature": f"use {KEY} here", "password": "hunter2", "depth": 2},
        document=f"Call with Authorization: Bearer {KEY}",
        input_tokens=None,
        output_tokens=None,
        latency_ms=None,
    )


async def test_a_full_record_is_stored_with_credentials_masked(
    records: SqlGenerationRecords, metrics: Metrics, clock: Clock
) -> None:
    recorder = GenerationRecorder(records, policy=RecordPolicy.FULL, metrics=metrics, now=clock)
    written = record(recorder)
    assert await recorder.keep(written)
    stored = await records.get(written.record_id, user_id="ada")
    assert stored is not None
    assert stored.arguments == {
        "feature": "use ctxfy_0123456789abcdef_*** here",
        "password": "***",
        "depth": 2,
    }
    assert stored.document == "Call with Authorization: Bearer ***"
    assert KEY not in repr(stored)
    assert counted(metrics, "written") == 1


async def test_a_metadata_record_keeps_no_content(
    records: SqlGenerationRecords, metrics: Metrics, clock: Clock
) -> None:
    recorder = GenerationRecorder(records, policy=RecordPolicy.METADATA, metrics=metrics, now=clock)
    written = record(recorder)
    assert await recorder.keep(written)
    stored = await records.get(written.record_id, user_id=None)
    assert stored is not None
    assert (stored.arguments, stored.document, stored.model) == (None, None, "gpt-test")


async def test_with_records_off_nothing_is_written(
    records: SqlGenerationRecords, metrics: Metrics, clock: Clock
) -> None:
    recorder = GenerationRecorder(records, policy=RecordPolicy.OFF, metrics=metrics, now=clock)
    assert not recorder.enabled
    assert not await recorder.keep(record(recorder))
    assert await records.list(RecordQuery(user_id=None)) == []
    assert counted(metrics, "skipped") == 1


@pytest.mark.parametrize("store", [BrokenRecords(), StalledRecords()], ids=["down", "stalled"])
async def test_a_store_that_fails_or_stalls_is_counted_and_never_raises(
    store: BrokenRecords, metrics: Metrics, clock: Clock
) -> None:
    recorder = GenerationRecorder(
        store, policy=RecordPolicy.FULL, metrics=metrics, now=clock, write_timeout=0.05
    )
    with capture_logs() as logs, anyio.fail_after(5):
        assert not await recorder.keep(record(recorder))
    assert counted(metrics, "failed") == 1
    failures = [line for line in logs if line["event"] == "generation_record_failed"]
    assert len(failures) == 1
    assert KEY not in str(logs)


async def test_the_purge_deletes_what_is_older_than_the_retention(
    records: SqlGenerationRecords, metrics: Metrics, clock: Clock
) -> None:
    recorder = GenerationRecorder(records, policy=RecordPolicy.FULL, metrics=metrics, now=clock)
    old = record(recorder)
    await recorder.keep(old)
    clock.at += timedelta(days=20)
    recent = record(recorder)
    await recorder.keep(recent)
    clock.at += timedelta(days=15)  # old is 35 days old, recent 15

    assert await recorder.purge(timedelta(days=30)) == 1
    kept = await records.list(RecordQuery(user_id=None))
    assert [r.record_id for r in kept] == [recent.record_id]


async def test_a_purge_against_a_store_that_is_down_deletes_nothing_and_goes_on(
    metrics: Metrics, clock: Clock
) -> None:
    recorder = GenerationRecorder(
        BrokenRecords(), policy=RecordPolicy.FULL, metrics=metrics, now=clock
    )
    with capture_logs() as logs:
        assert await recorder.purge(timedelta(days=1)) == 0
    assert [line["event"] for line in logs] == ["generation_records_purge_failed"]
