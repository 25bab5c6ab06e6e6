"""Every generation leaves a record: success, LLM failure, refusal and cancellation, each
written by the generator through the recorder into a real SQLite key store."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from app.services.access_line import AccessLine
from app.services.generation import DocumentGenerator, LlmLabels
from app.services.generation_records import GenerationRecorder
from domain.generation import ClientSampling, LlmMode, Route
from domain.generation_records import GenerationOutcome, RecordPolicy, RecordQuery
from domain.llm import LlmNotConfigured, LlmTimeout
from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.catalog.loader import load_catalog
from infrastructure.keystore.records import SqlGenerationRecords
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.metrics import MULTIPROC_ENV, Metrics
from tests.fakes import ScriptedLlm, completion
from tests.integration.test_generation_recorder import BrokenRecords

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LABELS = LlmLabels(
    server_provider="openai-compatible", server_model="configured-model", client_provider="mcp"
)
ARGUMENTS = {"task": "Rotate the signing keys.", "domain": "identity platform"}


@pytest.fixture(autouse=True)
def _single_process_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


@pytest.fixture(scope="module")
def entry() -> CatalogEntry:
    return load_catalog().get("context_stack")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(version="test")


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[SqlGenerationRecords]:
    store = SqlKeyStore(f"sqlite:///{tmp_path / 'ctxfy.db'}")
    await store.start()
    yield SqlGenerationRecords(store)
    await store.close()


def caller() -> AccessLine:
    return AccessLine(user_id="ada", key_id="0123456789abcdef", request_id="req-42")


def generator(
    metrics: Metrics,
    records: SqlGenerationRecords | BrokenRecords,
    server: ScriptedLlm | None,
    policy: RecordPolicy = RecordPolicy.FULL,
) -> DocumentGenerator:
    recorder = GenerationRecorder(records, policy=policy, metrics=metrics, now=lambda: NOW)
    return DocumentGenerator(
        mode=LlmMode.FALLBACK, server=server, labels=LABELS, metrics=metrics, recorder=recorder
    )


async def test_a_document_is_recorded_with_who_what_and_how_and_its_id_returned(
    entry: CatalogEntry, metrics: Metrics, records: SqlGenerationRecords
) -> None:
    answer = completion(latency_ms=321.0)
    service = generator(metrics, records, ScriptedLlm(answer))
    values = entry.validate(ARGUMENTS)
    line = caller()
    plan = await service.prepare(entry, values, ClientSampling.NO_CLIENT, line=line)
    document = await service.generate(plan, line=line)

    assert document.generation_id is not None
    stored = await records.get(document.generation_id, user_id="ada")
    assert stored is not None
    assert (stored.prompt, stored.prompt_version, stored.outcome) == (
        "context_stack",
        entry.version,
        GenerationOutcome.OK,
    )
    assert (stored.request_id, stored.key_id, stored.route) == (
        "req-42",
        "0123456789abcdef",
        Route.SERVER,
    )
    assert (stored.provider, stored.model) == (answer.provider, answer.model)
    assert (stored.input_tokens, stored.output_tokens, stored.latency_ms) == (
        answer.input_tokens,
        answer.output_tokens,
        321.0,
    )
    assert stored.document == document.document
    assert stored.arguments == values
    assert stored.created_at == NOW


async def test_metadata_policy_keeps_the_facts_but_not_the_content(
    entry: CatalogEntry, metrics: Metrics, records: SqlGenerationRecords
) -> None:
    service = generator(metrics, records, ScriptedLlm(completion()), RecordPolicy.METADATA)
    line = caller()
    plan = await service.prepare(
        entry, entry.validate(ARGUMENTS), ClientSampling.NO_CLIENT, line=line
    )
    document = await service.generate(plan, line=line)
    assert document.generation_id is not None
    stored = await records.get(document.generation_id, user_id=None)
    assert stored is not None
    assert (stored.arguments, stored.document, stored.outcome) == (
        None,
        None,
        GenerationOutcome.OK,
    )


async def test_an_llm_failure_is_recorded_with_its_code(
    entry: CatalogEntry, metrics: Metrics, records: SqlGenerationRecords
) -> None:
    service = generator(metrics, records, ScriptedLlm(LlmTimeout("too slow")))
    line = caller()
    plan = await service.prepare(
        entry, entry.validate(ARGUMENTS), ClientSampling.NO_CLIENT, line=line
    )
    with capture_logs(), pytest.raises(LlmTimeout):
        await service.generate(plan, line=line)
    [stored] = await records.list(RecordQuery(user_id="ada"))
    assert (stored.outcome, stored.failure, stored.document) == (
        GenerationOutcome.ERROR,
        LlmTimeout.code,
        None,
    )
    assert (stored.route, stored.model) == (Route.SERVER, "configured-model")


async def test_a_refusal_before_any_llm_is_recorded_without_a_route(
    entry: CatalogEntry, metrics: Metrics, records: SqlGenerationRecords
) -> None:
    service = generator(metrics, records, server=None)  # no server LLM, no client to sample
    with pytest.raises(LlmNotConfigured):
        await service.prepare(
            entry, entry.validate(ARGUMENTS), ClientSampling.NO_CLIENT, line=caller()
        )
    [stored] = await records.list(RecordQuery(user_id="ada"))
    assert (stored.outcome, stored.failure, stored.route, stored.provider) == (
        GenerationOutcome.ERROR,
        LlmNotConfigured.code,
        None,
        None,
    )


async def test_a_cancelled_generation_is_still_recorded(
    entry: CatalogEntry, metrics: Metrics, records: SqlGenerationRecords
) -> None:
    gate = anyio.Event()  # never set: the LLM never answers
    service = generator(metrics, records, ScriptedLlm(completion(), gate=gate))
    line = caller()
    plan = await service.prepare(
        entry, entry.validate(ARGUMENTS), ClientSampling.NO_CLIENT, line=line
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(service.generate, plan)
        await anyio.wait_all_tasks_blocked()
        tasks.cancel_scope.cancel()
    [stored] = await records.list(RecordQuery(user_id="ada"))
    assert (stored.outcome, stored.failure) == (GenerationOutcome.CANCELLED, "cancelled")


async def test_a_store_outage_still_returns_the_document_and_counts_the_failure(
    entry: CatalogEntry, metrics: Metrics
) -> None:
    answer = completion()
    service = generator(metrics, BrokenRecords(), ScriptedLlm(answer))
    line = caller()
    plan = await service.prepare(
        entry, entry.validate(ARGUMENTS), ClientSampling.NO_CLIENT, line=line
    )
    with capture_logs() as logs:
        document = await service.generate(plan, line=line)
    assert (document.document, document.generation_id) == (answer.text, None)
    failed = {"outcome": "failed"}
    assert metrics.registry.get_sample_value("ctxfy_generation_records_total", failed) == 1
    assert "generation_record_failed" in [entry["event"] for entry in logs]
