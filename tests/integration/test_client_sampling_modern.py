"""2026-07-28 sampling: the tool answers with an input request, the client's LLM writes, and
the retried call's answer becomes the completion (``input_request``, ``AnsweredSamplingLlm``)."""

import anyio
import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.tools import InputRequiredToolResult
from mcp.types import CreateMessageResult, ImageContent, TextContent

from domain.llm import (
    LlmBadResponse,
    LlmCompletion,
    LlmError,
    LlmMessage,
    LlmRequest,
    ModelPreferences,
)
from infrastructure.llm.client_sampling import (
    AnsweredSamplingLlm,
    client_answer,
    input_request,
    is_modern,
)
from tests.fakes import ClientLlm, said

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
ASK = LlmRequest(
    messages=(LlmMessage("user", "Summarise this."), LlmMessage("assistant", "Sure.")),
    system_prompt="You summarise.",
    max_tokens=64,
    temperature=0.2,
    model_preferences=ModelPreferences(hints=("small",), cost_priority=0.7),
)
ASKED_AT = 1_000.0


def round_trip_server(outcomes: list[LlmCompletion | LlmError], answered_at: float) -> FastMCP:
    """A server whose one tool asks the client's LLM in the answer, as generation tools do."""
    server = FastMCP("t")

    @server.tool
    async def write(ctx: Context) -> InputRequiredToolResult | str:
        answer = client_answer(ctx)
        if answer is None:
            return InputRequiredToolResult(input_request(ASK, asked_at=ASKED_AT))
        llm = AnsweredSamplingLlm(answer, ctx.request_state, clock=lambda: answered_at)
        try:
            outcomes.append(await llm.complete(ASK))
        except LlmError as exc:
            outcomes.append(exc)
        return "done"

    return server


async def round_trip(
    llm: ClientLlm, answered_at: float = ASKED_AT + 2.5
) -> LlmCompletion | LlmError:
    outcomes: list[LlmCompletion | LlmError] = []
    with anyio.fail_after(10):
        async with Client(
            round_trip_server(outcomes, answered_at), sampling_handler=llm, mode=MODERN
        ) as client:
            await client.call_tool("write", {})
    [outcome] = outcomes
    return outcome


async def test_the_clients_llm_is_asked_the_whole_request_in_the_answer() -> None:
    llm = ClientLlm()
    await round_trip(llm)

    [params] = llm.received
    assert [(m.role, m.content) for m in params.messages] == [
        ("user", TextContent(type="text", text="Summarise this.")),
        ("assistant", TextContent(type="text", text="Sure.")),
    ]
    assert (params.system_prompt, params.max_tokens, params.temperature) == (
        "You summarise.",
        64,
        0.2,
    )
    assert params.model_preferences is not None
    assert [h.name for h in params.model_preferences.hints or []] == ["small"]
    assert params.model_preferences.cost_priority == 0.7


async def test_the_answer_on_the_retry_is_the_completion_timed_from_the_ask() -> None:
    completion = await round_trip(ClientLlm(said("A summary.", model="client-model")))

    assert completion == LlmCompletion(
        text="A summary.",
        model="client-model",
        provider="mcp-client",
        input_tokens=None,
        output_tokens=None,
        latency_ms=2500.0,
    )


@pytest.mark.parametrize(
    "content",
    [
        ImageContent(type="image", data="aGk=", mime_type="image/png"),
        TextContent(type="text", text="  "),
    ],
    ids=["image", "blank"],
)
async def test_an_answer_that_is_not_text_is_a_bad_response(
    content: ImageContent | TextContent,
) -> None:
    answer = CreateMessageResult(role="assistant", content=content, model="m")
    outcome = await round_trip(ClientLlm(answer))
    assert isinstance(outcome, LlmBadResponse)


async def test_an_answer_of_another_kind_is_a_bad_response() -> None:
    llm = AnsweredSamplingLlm({"not": "a sampling result"}, None)
    with pytest.raises(LlmBadResponse, match="something else"):
        await llm.complete(ASK)


@pytest.mark.parametrize("state", [None, "", "{}", '{"v": 99, "asked_at": 1}', "[1]", "not json"])
async def test_a_state_without_the_ask_time_leaves_latency_at_zero(state: str | None) -> None:
    completion = await AnsweredSamplingLlm(said(), state, clock=lambda: 5.0).complete(ASK)
    assert completion.latency_ms == 0.0


@pytest.mark.parametrize(("mode", "modern"), [(MODERN, True), ("legacy", False)])
async def test_the_era_of_a_request_is_told_from_its_protocol_version(
    mode: str, modern: bool
) -> None:
    server = FastMCP("t")
    seen: list[bool] = []

    @server.tool
    def probe(ctx: Context) -> str:
        seen.append(is_modern(ctx))
        return "ok"

    with anyio.fail_after(10):
        async with Client(server, mode=mode) as client:
            await client.call_tool("probe", {})
    assert seen == [modern]
