"""A ``generate_<prompt>`` tool's own behaviour through the in-memory client: whose LLM it
asks, what it asks, and the progress it reports while it waits.

The in-memory client carries no access token, so the tool is served without its scope
check on a server of its own; scopes are tested over HTTP (``test_mcp_generation.py``).
"""

from typing import Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.messages import MessageHandler
from fastmcp.exceptions import ToolError
from mcp import MCPError
from mcp.types import CreateMessageResult, ProgressNotification, TextContent
from prometheus_client.parser import text_string_to_metric_families

from app.mcp.tools import GenerationTool
from app.services.generation import DocumentGenerator, LlmLabels
from domain.generation import LlmMode
from domain.llm import LlmError, LlmRateLimited, LlmTimeout
from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.catalog.loader import load_catalog
from infrastructure.llm import client_sampling, openai_compatible
from infrastructure.metrics import MULTIPROC_ENV, Metrics
from tests.fakes import ClientLlm, ScriptedLlm

pytestmark = pytest.mark.anyio
MODERN = "2026-07-28"


@pytest.fixture(params=["legacy", MODERN])
def era(request: pytest.FixtureRequest) -> str:
    """The protocol era the in-memory client speaks (``mode`` of ``fastmcp.Client``)."""
    mode: str = request.param
    return mode


TOOL = "generate_context_stack"
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
type Progress = tuple[float, float | None, str | None]


@pytest.fixture(autouse=True)
def _single_process_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


@pytest.fixture
def entry() -> CatalogEntry:
    return load_catalog().get("context_stack")


def serve(
    entry: CatalogEntry,
    llm: ScriptedLlm,
    mode: LlmMode = LlmMode.FALLBACK,
    metrics: Metrics | None = None,
) -> FastMCP:
    """A server whose one tool generates ``entry`` under ``mode``, with ``llm`` as the server's."""
    generator = DocumentGenerator(
        mode=mode,
        server=llm,
        labels=LlmLabels(
            server_provider=openai_compatible.PROVIDER,
            server_model="gpt-test",
            client_provider=client_sampling.PROVIDER,
        ),
        metrics=metrics or Metrics(version="t"),
    )
    tool = GenerationTool.from_entry(
        entry, generator, stateless=False, sampling_timeout=5, heartbeat=0.01, auth=None
    )
    server = FastMCP("t")
    server.add_tool(tool)
    return server


async def test_a_client_that_samples_writes_the_document_with_its_own_llm(
    era: str, entry: CatalogEntry, llm: ScriptedLlm
) -> None:
    client_llm = ClientLlm()

    with anyio.fail_after(10):
        async with Client(serve(entry, llm), mode=era, sampling_handler=client_llm) as mcp:
            result = await mcp.call_tool(TOOL, CONTEXT_STACK)

    assert isinstance(result.content[0], TextContent)
    assert result.content[0].text == client_llm.text
    assert result.structured_content is not None
    assert {
        name: value for name, value in result.structured_content.items() if name != "latency_ms"
    } == {
        "prompt": "context_stack",
        "version": "1.0.0",
        "deprecated": False,
        "document": client_llm.text,
        "route": "client",
        "provider": "mcp-client",
        "model": "fake-model-1",
        "input_tokens": None,
        "output_tokens": None,
        "generation_id": None,  # this server keeps no records, so nothing links to one
    }
    assert len(result.content) == 1
    assert result.structured_content["latency_ms"] >= 0
    assert llm.requests == [], "fallback prefers the client's LLM"


async def test_the_client_llm_is_asked_for_the_rendered_prompt_under_its_generation_settings(
    era: str, entry: CatalogEntry, llm: ScriptedLlm
) -> None:
    client_llm = ClientLlm()

    with anyio.fail_after(10):
        async with Client(serve(entry, llm), mode=era, sampling_handler=client_llm) as mcp:
            await mcp.call_tool(TOOL, CONTEXT_STACK)

    (asked,) = client_llm.received
    settings = entry.definition.generation
    assert settings is not None
    assert settings.model_preferences is not None
    assert [(m.role, m.content) for m in asked.messages] == [
        (m.role, TextContent(type="text", text=m.text))
        for m in entry.render(CONTEXT_STACK).messages
    ]
    assert (asked.system_prompt, asked.max_tokens, asked.temperature) == (
        settings.system_prompt,
        settings.max_tokens,
        settings.temperature,
    )
    assert asked.model_preferences is not None
    assert (
        asked.model_preferences.cost_priority,
        asked.model_preferences.speed_priority,
        asked.model_preferences.intelligence_priority,
    ) == (
        settings.model_preferences.cost_priority,
        settings.model_preferences.speed_priority,
        settings.model_preferences.intelligence_priority,
    )


async def test_a_server_only_policy_uses_the_server_llm_even_when_the_client_could_sample(
    era: str, entry: CatalogEntry, llm: ScriptedLlm
) -> None:
    client_llm = ClientLlm()

    with anyio.fail_after(10):
        async with Client(
            serve(entry, llm, LlmMode.SERVER), mode=era, sampling_handler=client_llm
        ) as mcp:
            result = await mcp.call_tool(TOOL, CONTEXT_STACK)

    assert result.structured_content is not None
    assert result.structured_content["route"] == "server"
    assert len(llm.requests) == 1
    assert client_llm.received == []


async def test_client_generations_are_counted_under_fixed_labels_without_tokens(
    era: str, entry: CatalogEntry, llm: ScriptedLlm
) -> None:
    metrics = Metrics(version="t")

    with anyio.fail_after(10):
        async with Client(
            serve(entry, llm, metrics=metrics), mode=era, sampling_handler=ClientLlm()
        ) as mcp:
            await mcp.call_tool(TOOL, CONTEXT_STACK)

    counted = [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.name.startswith("ctxfy_llm_") and sample.name.endswith("_total")
    ]
    # The client picks its model ("fake-model-1"): a label per name would be unbounded.
    labels = {"provider": "mcp-client", "model": "client"}
    assert counted == [("ctxfy_llm_requests_total", labels | {"outcome": "ok"}, 1.0)]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        pytest.param(LlmTimeout("The LLM did not answer in 120 s"), "llm_timeout: ", id="timeout"),
        pytest.param(LlmRateLimited(12.5), "llm_rate_limited: ", id="rate-limited"),
    ],
)
async def test_an_llm_failure_is_a_tool_error_with_its_code_and_message(
    era: str, entry: CatalogEntry, failure: LlmError, expected: str
) -> None:
    with anyio.fail_after(10), pytest.raises(ToolError) as caught:
        async with Client(serve(entry, ScriptedLlm(failure)), mode=era) as mcp:
            await mcp.call_tool(TOOL, CONTEXT_STACK)

    assert str(caught.value) == f"{expected}{failure}"


async def refuse(*_: Any) -> CreateMessageResult:
    raise RuntimeError("the user declined")


async def test_a_legacy_client_llm_that_refuses_is_a_sampling_failed_tool_error(
    entry: CatalogEntry, llm: ScriptedLlm
) -> None:
    with anyio.fail_after(10), pytest.raises(ToolError) as caught:
        async with Client(serve(entry, llm), sampling_handler=refuse, mode="legacy") as mcp:
            await mcp.call_tool(TOOL, CONTEXT_STACK)

    assert str(caught.value).startswith("sampling_failed: ")
    assert "the user declined" in str(caught.value)
    assert llm.requests == [], "a client that can sample is not replaced by the server"


async def test_a_modern_client_llm_that_refuses_stops_the_call_on_the_client_side(
    entry: CatalogEntry, llm: ScriptedLlm
) -> None:
    # 2026-07-28: the refusal never travels back, so the client itself raises.
    with anyio.fail_after(10), pytest.raises(MCPError, match="the user declined"):
        async with Client(serve(entry, llm), sampling_handler=refuse, mode=MODERN) as mcp:
            await mcp.call_tool(TOOL, CONTEXT_STACK)

    assert llm.requests == [], "a client that can sample is not replaced by the server"


@pytest.mark.parametrize(("sampling", "whose"), [(False, "server"), (True, "client")])
async def test_a_client_with_a_progress_token_hears_progress_from_start_to_done(
    entry: CatalogEntry, llm: ScriptedLlm, sampling: bool, whose: str
) -> None:
    heard: list[Progress] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))

    with anyio.fail_after(10):
        async with Client(
            serve(entry, llm), sampling_handler=ClientLlm() if sampling else None
        ) as mcp:
            await mcp.call_tool(TOOL, CONTEXT_STACK, progress_handler=on_progress)

    assert heard[0] == (0, 1, f"Asking the {whose}'s LLM")
    assert heard[-1] == (1, 1, "Document ready")
    values = [progress for progress, _, _ in heard]
    assert values == sorted(set(values)), "strictly rising"


async def test_a_long_generation_sends_heartbeats_that_rise_towards_done(
    era: str,
    entry: CatalogEntry,
) -> None:
    heartbeats_heard = anyio.Event()
    llm = ScriptedLlm(gate=heartbeats_heard)
    heard: list[Progress] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))
        if len(heard) >= 3:
            heartbeats_heard.set()

    with anyio.fail_after(10):
        async with Client(serve(entry, llm), mode=era) as mcp:
            result = await mcp.call_tool(TOOL, CONTEXT_STACK, progress_handler=on_progress)

    assert not result.is_error
    assert len(heard) >= 4
    first, *beats, last = heard
    assert first == (0, 1, "Asking the server's LLM")
    assert last == (1, 1, "Document ready")
    assert all(total == 1 and 0 < progress < 1 for progress, total, _ in beats)
    assert all((message or "").startswith("Still generating") for _, _, message in beats)
    values = [progress for progress, _, _ in heard]
    assert values == sorted(set(values)), "strictly rising"


class ProgressRecorder(MessageHandler):
    """Every progress notification the server sends, whichever request it belongs to."""

    def __init__(self) -> None:
        self.heard: list[ProgressNotification] = []

    async def on_progress(self, message: ProgressNotification) -> None:
        self.heard.append(message)


async def test_without_a_progress_token_no_progress_is_sent(
    era: str, entry: CatalogEntry, llm: ScriptedLlm
) -> None:
    recorder = ProgressRecorder()

    with anyio.fail_after(10):
        async with Client(serve(entry, llm), mode=era, message_handler=recorder) as mcp:
            # The session's own call_tool sends no token unless given a progress callback.
            untokened = await mcp.session.call_tool(TOOL, CONTEXT_STACK)
            heard_without = list(recorder.heard)
            await mcp.call_tool(TOOL, CONTEXT_STACK)

    assert not untokened.is_error
    assert heard_without == []
    assert recorder.heard, "the recorder hears the progress of a call that has a token"
