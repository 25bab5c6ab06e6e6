"""The document generator against scripted LLMs and a real catalog prompt: which LLM it picks,
what it asks, and what it records on the access line and in metrics."""

import dataclasses

import pytest

from app.services.access_line import AccessLine
from app.services.generation import DocumentGenerator, GeneratedDocument, LlmLabels
from domain.generation import ClientSampling, LlmMode, Route
from domain.llm import (
    LlmCircuitOpen,
    LlmError,
    LlmGateway,
    LlmNotConfigured,
    LlmRateLimited,
    LlmRejected,
    LlmTimeout,
    LlmUnavailable,
    ModelPreferences,
    SamplingFailed,
    SamplingUnavailable,
)
from domain.prompts import Scalar
from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.catalog.loader import load_catalog
from infrastructure.llm import client_sampling, openai_compatible
from infrastructure.metrics import MULTIPROC_ENV, Metrics
from tests.fakes import ScriptedLlm, completion

pytestmark = pytest.mark.anyio
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
SERVER, CLIENT = openai_compatible.PROVIDER, client_sampling.PROVIDER
MODEL = "configured-model"  # the operator's CTXFY_LLM_MODEL
LABELS = LlmLabels(server_provider=SERVER, server_model=MODEL, client_provider=CLIENT)
REQUESTS = "ctxfy_llm_requests_total"
TOKENS = "ctxfy_llm_tokens_total"
AVAILABLE, NOT_OFFERED = ClientSampling.AVAILABLE, ClientSampling.NOT_OFFERED
STATELESS, NO_CLIENT = ClientSampling.STATELESS, ClientSampling.NO_CLIENT


@pytest.fixture(autouse=True)
def _single_process_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


@pytest.fixture(scope="module")
def entry() -> CatalogEntry:
    return load_catalog().get("context_stack")


@pytest.fixture
def values(entry: CatalogEntry) -> dict[str, Scalar | None]:
    return entry.validate(CONTEXT_STACK)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(version="test")


def generator(
    metrics: Metrics, server: LlmGateway | None = None, mode: LlmMode = LlmMode.FALLBACK
) -> DocumentGenerator:
    return DocumentGenerator(mode=mode, server=server, labels=LABELS, metrics=metrics)


def requests(metrics: Metrics, provider: str, model: str, outcome: str) -> float | None:
    labels = {"provider": provider, "model": model, "outcome": outcome}
    return metrics.registry.get_sample_value(REQUESTS, labels)


def tokens(metrics: Metrics, provider: str, model: str, direction: str) -> float | None:
    labels = {"provider": provider, "model": model, "direction": direction}
    return metrics.registry.get_sample_value(TOKENS, labels)


@pytest.mark.parametrize(
    ("mode", "sampling", "server_configured", "route"),
    [
        (LlmMode.FALLBACK, AVAILABLE, True, Route.CLIENT),
        (LlmMode.FALLBACK, AVAILABLE, False, Route.CLIENT),
        (LlmMode.FALLBACK, NOT_OFFERED, True, Route.SERVER),
        (LlmMode.FALLBACK, STATELESS, True, Route.SERVER),
        (LlmMode.FALLBACK, NO_CLIENT, True, Route.SERVER),
        (LlmMode.SERVER, AVAILABLE, True, Route.SERVER),
        (LlmMode.CLIENT, AVAILABLE, True, Route.CLIENT),
        (LlmMode.CLIENT, AVAILABLE, False, Route.CLIENT),
    ],
)
def test_the_plan_takes_the_route_the_mode_allows_and_writes_it_on_the_access_line(
    entry: CatalogEntry,
    values: dict[str, Scalar | None],
    metrics: Metrics,
    mode: LlmMode,
    sampling: ClientSampling,
    server_configured: bool,
    route: Route,
) -> None:
    llm, line = ScriptedLlm(), AccessLine()
    plan = generator(metrics, llm if server_configured else None, mode).plan(
        entry, values, sampling, line=line
    )

    assert (plan.prompt, plan.route) == ("context_stack", route)
    assert (line.llm_route, line.llm_error) == (route.value, None)
    assert llm.requests == []  # a plan sends nothing


@pytest.mark.parametrize(
    ("mode", "sampling", "server_configured", "refusal"),
    [
        (LlmMode.FALLBACK, NO_CLIENT, False, LlmNotConfigured),
        (LlmMode.SERVER, NO_CLIENT, False, LlmNotConfigured),
        (LlmMode.SERVER, AVAILABLE, False, LlmNotConfigured),
        (LlmMode.CLIENT, NO_CLIENT, True, LlmNotConfigured),
        (LlmMode.FALLBACK, NOT_OFFERED, False, SamplingUnavailable),
        (LlmMode.FALLBACK, STATELESS, False, SamplingUnavailable),
        (LlmMode.CLIENT, NOT_OFFERED, True, SamplingUnavailable),
    ],
)
def test_a_request_no_llm_may_serve_is_refused_at_plan_time_with_its_code_on_the_line(
    entry: CatalogEntry,
    values: dict[str, Scalar | None],
    metrics: Metrics,
    mode: LlmMode,
    sampling: ClientSampling,
    server_configured: bool,
    refusal: type[LlmError],
) -> None:
    server, line = (ScriptedLlm() if server_configured else None), AccessLine()
    with pytest.raises(refusal):
        generator(metrics, server, mode).plan(entry, values, sampling, line=line)
    assert (line.llm_route, line.llm_error) == (None, refusal.code)


def test_a_prompt_without_generation_settings_cannot_be_planned_even_with_every_llm(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics
) -> None:
    bare = dataclasses.replace(
        entry, definition=dataclasses.replace(entry.definition, generation=None)
    )
    line = AccessLine()
    with pytest.raises(LlmNotConfigured, match="does not generate documents"):
        generator(metrics, ScriptedLlm()).plan(bare, values, AVAILABLE, line=line)
    assert (line.llm_route, line.llm_error) == (None, "llm_not_configured")


async def test_the_llm_is_asked_exactly_the_rendered_messages_under_the_prompts_settings(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics
) -> None:
    llm = ScriptedLlm()
    service = generator(metrics, llm)
    await service.generate(service.plan(entry, values, NO_CLIENT))

    [asked] = llm.requests
    rendered = entry.render(CONTEXT_STACK)
    assert [(m.role, m.text) for m in asked.messages] == [
        (m.role, m.text) for m in rendered.messages
    ]
    assert "Task: Rotate the signing keys.\nDomain: identity platform\n" in asked.messages[0].text
    assert asked.system_prompt is not None
    assert asked.system_prompt.startswith("You are a context engineer.")
    assert (asked.max_tokens, asked.temperature) == (4096, 0.3)
    assert asked.model_preferences == ModelPreferences(
        intelligence_priority=0.8, speed_priority=0.3
    )


async def test_generating_returns_the_document_with_the_facts_of_the_completion(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics
) -> None:
    answer = completion(latency_ms=987.654)
    service, line = generator(metrics, ScriptedLlm(answer)), AccessLine()
    document = await service.generate(service.plan(entry, values, NO_CLIENT), line=line)

    assert document == GeneratedDocument(
        prompt="context_stack",
        version=entry.version,
        deprecated=False,
        document=answer.text,
        route=Route.SERVER,
        provider="openai-compatible",
        model="gpt-test-2026",
        input_tokens=120,
        output_tokens=30,
        latency_ms=987.7,
    )
    assert (line.llm, line.llm_error) == (answer, None)


@pytest.mark.parametrize(
    "error",
    [
        LlmTimeout("The LLM provider did not answer in time"),
        LlmUnavailable("The LLM provider cannot be reached"),
        LlmRejected(400),
        LlmRateLimited(2.0),
        LlmCircuitOpen(30.0),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_an_llm_error_propagates_with_its_code_on_the_line_and_counts_an_error(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics, error: LlmError
) -> None:
    service, line = generator(metrics, ScriptedLlm(error)), AccessLine()
    plan = service.plan(entry, values, NO_CLIENT, line=line)
    with pytest.raises(LlmError) as raised:
        await service.generate(plan, line=line)

    assert raised.value is error
    assert (line.llm_route, line.llm_error, line.llm) == ("server", error.code, None)
    assert requests(metrics, SERVER, MODEL, "error") == 1
    assert requests(metrics, SERVER, MODEL, "ok") is None
    assert tokens(metrics, SERVER, MODEL, "input") is None


async def test_a_success_counts_ok_and_tokens_under_the_configured_labels_not_the_upstreams(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics
) -> None:
    llm = ScriptedLlm(completion(model="gpt-upstream-2027-preview", provider="upstream-proxy"))
    service = generator(metrics, llm)
    for _ in range(2):
        await service.generate(service.plan(entry, values, NO_CLIENT))

    assert requests(metrics, SERVER, MODEL, "ok") == 2
    assert tokens(metrics, SERVER, MODEL, "input") == 240
    assert tokens(metrics, SERVER, MODEL, "output") == 60
    assert requests(metrics, "upstream-proxy", "gpt-upstream-2027-preview", "ok") is None
    assert requests(metrics, SERVER, "gpt-upstream-2027-preview", "ok") is None


async def test_the_client_route_asks_the_client_gateway_and_counts_under_the_client_label(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics
) -> None:
    server = ScriptedLlm()
    client = ScriptedLlm(
        completion(
            model="claude-of-the-client",
            provider="a-client-llm",
            input_tokens=None,
            output_tokens=None,
        )
    )
    service = generator(metrics, server)
    plan = service.plan(entry, values, AVAILABLE)
    document = await service.generate(plan, client=lambda: client)

    assert (document.route, document.model) == (Route.CLIENT, "claude-of-the-client")
    assert (len(client.requests), server.requests) == (1, [])
    assert client.requests[0] == plan.request
    assert requests(metrics, CLIENT, "client", "ok") == 1
    assert requests(metrics, CLIENT, "claude-of-the-client", "ok") is None
    assert tokens(metrics, CLIENT, "client", "input") is None  # sampling reports no tokens


async def test_a_failing_client_llm_counts_an_error_under_the_client_label(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics
) -> None:
    client, line = ScriptedLlm(SamplingFailed("The client refused")), AccessLine()
    service = generator(metrics, ScriptedLlm())
    with pytest.raises(SamplingFailed):
        await service.generate(
            service.plan(entry, values, AVAILABLE), client=lambda: client, line=line
        )

    assert line.llm_error == "sampling_failed"
    assert requests(metrics, CLIENT, "client", "error") == 1


async def test_a_client_route_without_a_client_gateway_is_sampling_unavailable(
    entry: CatalogEntry, values: dict[str, Scalar | None], metrics: Metrics
) -> None:
    server = ScriptedLlm()
    service = generator(metrics, server)
    with pytest.raises(SamplingUnavailable):
        await service.generate(service.plan(entry, values, AVAILABLE))
    assert server.requests == []
    assert requests(metrics, CLIENT, "client", "error") is None
