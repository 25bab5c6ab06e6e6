"""The client-sampling adapters through a real FastMCP server and an in-memory ``fastmcp.Client``
whose sampling handler is a deterministic fake LLM: ``ClientSamplingLlm`` on legacy sessions,
``input_request`` and ``AnsweredSamplingLlm`` for 2026-07-28 round trips."""

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.client.sampling import RequestContext
from mcp import ClientSession
from mcp.types import CreateMessageRequestParams as SamplingParams
from mcp.types import (
    CreateMessageResult,
    CreateMessageResultWithTools,
    ImageContent,
    ModelHint,
    SamplingMessage,
    TextContent,
)
from mcp.types import ModelPreferences as McpModelPreferences

from domain.generation import ClientSampling
from domain.llm import (
    LlmBadResponse,
    LlmCompletion,
    LlmError,
    LlmMessage,
    LlmRequest,
    LlmTimeout,
    ModelPreferences,
    SamplingFailed,
    SamplingUnavailable,
)
from infrastructure.llm.client_sampling import ClientSamplingLlm, client_sampling
from tests.fakes import ClientLlm, SamplingAnswer, said

pytestmark = pytest.mark.anyio
MODERN = "2026-07-28"

ASK = LlmRequest(messages=(LlmMessage("user", "Summarise this."),), max_tokens=64)

type Answer = SamplingAnswer
type Handler = Callable[
    [list[SamplingMessage], SamplingParams, RequestContext[ClientSession, Any]],
    Awaitable[Answer],
]
type Outcome = LlmCompletion | LlmError


def blocks(*texts: str) -> CreateMessageResultWithTools:
    content: list[Any] = [TextContent(type="text", text=t) for t in texts]
    return CreateMessageResultWithTools(role="assistant", content=content, model="fake-model-1")


@dataclass
class StalledClientLlm:
    """A client's LLM that answers only once ``released``, which the server's tool sets after
    the adapter gave up: the SDK client handles a server's request inside its receive loop, so
    a handler that never returned would also hold back the tool's own result."""

    released: anyio.Event = field(default_factory=anyio.Event)

    async def __call__(
        self,
        messages: list[SamplingMessage],
        params: SamplingParams,
        context: RequestContext[ClientSession, Any],
    ) -> Answer:
        await self.released.wait()
        return said("Too late.")


async def generate(
    handler: Handler | None,
    request: LlmRequest = ASK,
    *,
    llm_timeout: float = 5.0,
    server: FastMCP | None = None,
) -> Outcome:
    """Run one ``complete`` inside a tool call and return what it produced or raised."""
    server = server or FastMCP("t")
    outcomes: list[Outcome] = []

    @server.tool
    async def write(ctx: Context) -> None:
        try:
            outcomes.append(await ClientSamplingLlm(ctx, timeout=llm_timeout).complete(request))
        except LlmError as exc:
            outcomes.append(exc)
        if isinstance(handler, StalledClientLlm):
            handler.released.set()

    with anyio.fail_after(5):
        async with Client(server, sampling_handler=handler, mode="legacy") as client:
            await client.call_tool("write", {})
    [outcome] = outcomes
    return outcome


async def offered(handler: Handler | None, *, stateless: bool, mode: str) -> ClientSampling:
    server = FastMCP("t")

    @server.tool
    def probe(ctx: Context) -> str:
        return client_sampling(ctx, stateless=stateless)

    with anyio.fail_after(5):
        async with Client(server, sampling_handler=handler, mode=mode) as client:
            result = await client.call_tool("probe", {})
    return ClientSampling(result.data)


async def test_every_setting_reaches_the_clients_llm() -> None:
    llm = ClientLlm()
    request = LlmRequest(
        messages=(
            LlmMessage("user", "Q1"),
            LlmMessage("assistant", "A1"),
            LlmMessage("user", "Q2"),
        ),
        system_prompt="Be brief.",
        max_tokens=100,
        temperature=0.2,
        model_preferences=ModelPreferences(
            hints=("claude-haiku", "gpt-small"),
            cost_priority=0.9,
            speed_priority=0.5,
            intelligence_priority=0.1,
        ),
    )
    await generate(llm, request)
    [params] = llm.received
    assert [(m.role, m.content) for m in params.messages] == [
        ("user", TextContent(type="text", text="Q1")),
        ("assistant", TextContent(type="text", text="A1")),
        ("user", TextContent(type="text", text="Q2")),
    ]
    assert (params.system_prompt, params.temperature, params.max_tokens) == ("Be brief.", 0.2, 100)
    assert params.model_preferences == McpModelPreferences(
        hints=[ModelHint(name="claude-haiku"), ModelHint(name="gpt-small")],
        costPriority=0.9,
        speedPriority=0.5,
        intelligencePriority=0.1,
    )
    assert (params.tools, params.tool_choice, params.include_context) == (None, None, None)


async def test_settings_the_request_leaves_unset_are_left_to_the_client() -> None:
    llm = ClientLlm()
    await generate(llm, ASK)
    [params] = llm.received
    unset = (params.system_prompt, params.temperature, params.model_preferences)
    assert unset == (None, None, None)
    assert params.max_tokens == 64


async def test_preferences_without_hints_send_only_priorities() -> None:
    llm = ClientLlm()
    preferences = ModelPreferences(speed_priority=1.0)
    await generate(llm, LlmRequest(messages=ASK.messages, model_preferences=preferences))
    assert llm.received[0].model_preferences == McpModelPreferences(speedPriority=1.0)


async def test_a_completion_carries_the_clients_text_and_model_and_no_token_counts() -> None:
    completion = await generate(ClientLlm())
    assert isinstance(completion, LlmCompletion)
    assert (completion.text, completion.model, completion.provider) == (
        "A summary.",
        "fake-model-1",
        "mcp-client",
    )
    assert (completion.input_tokens, completion.output_tokens) == (None, None)
    assert completion.latency_ms >= 0


@pytest.mark.parametrize(
    ("model", "reported"), [("m" * 300, "m" * 128), ("", "unknown"), ("  ", "unknown")]
)
async def test_the_reported_model_name_is_bounded_and_never_empty(
    model: str, reported: str
) -> None:
    completion = await generate(ClientLlm(said(model=model)))
    assert isinstance(completion, LlmCompletion)
    assert completion.model == reported


async def test_a_client_without_sampling_is_unavailable() -> None:
    outcome = await generate(None)
    assert isinstance(outcome, SamplingUnavailable)
    assert "does not offer sampling" in str(outcome)


@pytest.mark.parametrize(
    ("handler", "stateless", "mode", "expected"),
    [
        (None, False, "legacy", ClientSampling.NOT_OFFERED),
        (ClientLlm(), False, "legacy", ClientSampling.AVAILABLE),
        (ClientLlm(), True, "legacy", ClientSampling.STATELESS),  # even though the client could
        (None, False, MODERN, ClientSampling.NOT_OFFERED),
        (ClientLlm(), False, MODERN, ClientSampling.AVAILABLE),
        (ClientLlm(), True, MODERN, ClientSampling.AVAILABLE),  # asked in the answer, not back
        (None, True, MODERN, ClientSampling.NOT_OFFERED),
    ],
)
async def test_client_sampling_reports_whether_the_client_can_lend_its_llm(
    handler: Handler | None, stateless: bool, mode: str, expected: ClientSampling
) -> None:
    assert await offered(handler, stateless=stateless, mode=mode) is expected


def test_the_stateless_answer_does_not_touch_the_session() -> None:
    sessionless = Context(FastMCP("t"))
    assert client_sampling(sessionless, stateless=True) is ClientSampling.STATELESS
    with pytest.raises(RuntimeError, match="session"):
        client_sampling(sessionless, stateless=False)


@pytest.mark.parametrize(
    ("client_message", "reason"),
    [
        ("quota exhausted", "quota exhausted"),
        ("first\nsecond " + "x" * 500, "first second " + "x" * 186 + "…"),  # 200 characters
        ("", "no reason given"),
    ],
)
async def test_a_client_error_becomes_sampling_failed_with_the_clients_reason_on_one_line(
    client_message: str, reason: str
) -> None:
    outcome = await generate(ClientLlm(RuntimeError(client_message)))
    assert isinstance(outcome, SamplingFailed)
    assert str(outcome) == f"The client's LLM did not generate: {reason}"


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (ImageContent(type="image", data="aGk=", mimeType="image/png"), "image content"),
        (TextContent(type="text", text=""), "empty text"),
        (TextContent(type="text", text=" \n "), "empty text"),
    ],
)
async def test_an_image_or_empty_answer_is_a_bad_response(
    answer: ImageContent | TextContent, complaint: str
) -> None:
    result = CreateMessageResult(role="assistant", content=answer, model="fake-model-1")
    outcome = await generate(ClientLlm(result))
    assert isinstance(outcome, LlmBadResponse)
    assert complaint in str(outcome)


async def test_a_block_list_answer_to_a_request_without_tools_is_malformed() -> None:
    outcome = await generate(ClientLlm(blocks("A ", "summary.")))
    assert isinstance(outcome, LlmBadResponse)
    assert "malformed" in str(outcome)


async def test_a_client_whose_llm_never_answers_times_out_promptly() -> None:
    # generate's own fail_after(5) bounds the wait, so a timeout not honoured fails the test.
    outcome = await generate(StalledClientLlm(), llm_timeout=0.2)
    assert isinstance(outcome, LlmTimeout)
    assert str(outcome) == "The client's LLM did not answer within 0.2 s"


async def test_cancelling_the_caller_is_not_turned_into_an_llm_error() -> None:
    server = FastMCP("t")
    stalled = StalledClientLlm()
    seen: list[str] = []

    @server.tool
    async def write(ctx: Context) -> None:
        with anyio.move_on_after(0.2) as scope:
            await ClientSamplingLlm(ctx, timeout=5).complete(ASK)
        seen.append("cancelled" if scope.cancelled_caught else "finished")
        stalled.released.set()

    with anyio.fail_after(5):
        async with Client(server, sampling_handler=stalled, mode="legacy") as client:
            await client.call_tool("write", {})
    assert seen == ["cancelled"]


async def test_a_context_without_a_session_fails_as_sampling_failed() -> None:
    with pytest.raises(SamplingFailed, match=r"failed \(RuntimeError\)$"):
        await ClientSamplingLlm(Context(FastMCP("t")), timeout=1).complete(ASK)


@pytest.mark.parametrize("timeout", [0.0, -1.0, math.nan])
def test_the_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        ClientSamplingLlm(Context(FastMCP("t")), timeout=timeout)
