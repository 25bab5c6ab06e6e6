"""Generation records against a real server: a document read back over REST and over MCP,
and the record a REST client finds after giving up mid-generation."""

from collections.abc import Iterator

import anyio
import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.types import ResourceLink, TextContent, TextResourceContents

from infrastructure.catalog.loader import load_catalog
from tests.e2e.fake_llm import FakeLlm, Reply
from tests.e2e.server import RunningServer, running_server

PROMPT = "context_stack"
GENERATE = f"/v1/prompts/{PROMPT}/generate"
EXAMPLE = load_catalog().get(PROMPT).definition.example_arguments
REPLY = Reply(text="# Context stack\nkept as a record")
BOUND = 15.0


@pytest.fixture(scope="module")
def server(upstream: FakeLlm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "CTXFY_DRAIN_SECONDS": "0",
        "CTXFY_LLM_BASE_URL": upstream.base_url,
        "CTXFY_LLM_MODEL": "operator-model",
        "CTXFY_LLM_TIMEOUT_SECONDS": "60",
        "CTXFY_GENERATION_RECORDS": "full",
    }
    with running_server(tmp_path_factory.mktemp("records"), env, scope="write") as started:
        yield started


@pytest.fixture(autouse=True)
def _replying(upstream: FakeLlm) -> Iterator[None]:
    upstream.reset()
    upstream.reply(REPLY)
    yield
    upstream.reset()


def rest(server: RunningServer, timeout: float = BOUND) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server.key}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=timeout)


async def read_over_mcp(server: RunningServer, uri: str) -> list[TextResourceContents]:
    transport = StreamableHttpTransport(
        server.mcp_url, headers={"Authorization": f"Bearer {server.key}"}
    )
    with anyio.fail_after(BOUND):
        async with Client(transport) as client:
            contents = await client.read_resource(uri)
    return [c for c in contents if isinstance(c, TextResourceContents)]


def test_a_rest_document_reads_back_over_rest_and_as_an_mcp_resource(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with rest(server) as http:
        generated = http.post(GENERATE, json=EXAMPLE)
        assert generated.status_code == 200
        generation_id = generated.json()["generation_id"]
        location = generated.headers["location"]
        assert location == f"/v1/generations/{generation_id}"
        record = http.get(location)
    assert record.status_code == 200
    body = record.json()
    assert (body["document"], body["outcome"], body["prompt"]) == (REPLY.text, "ok", PROMPT)
    assert body["arguments"] == EXAMPLE | body["arguments"]  # defaults filled in, example kept

    contents = anyio.run(read_over_mcp, server, f"ctxfy://generations/{generation_id}")
    assert contents[0].text == REPLY.text
    with capsys.disabled():
        print(  # noqa: T201 — the test reports its figure
            f"\nrecords: {generation_id} read back over REST ({location}) and MCP "
            f"(ctxfy://generations/{generation_id}), {len(contents[0].text)} characters"
        )


def test_an_mcp_tool_result_links_to_a_record_rest_can_read(server: RunningServer) -> None:
    async def call() -> list[object]:
        transport = StreamableHttpTransport(
            server.mcp_url, headers={"Authorization": f"Bearer {server.key}"}
        )
        with anyio.fail_after(BOUND):
            async with Client(transport) as client:
                result = await client.call_tool(f"generate_{PROMPT}", EXAMPLE)
        return list(result.content)

    content = anyio.run(call)
    texts = [c.text for c in content if isinstance(c, TextContent)]
    links = [c for c in content if isinstance(c, ResourceLink)]
    assert texts == [REPLY.text]
    assert len(links) == 1
    generation_id = str(links[0].uri).removeprefix("ctxfy://generations/")
    with rest(server) as http:
        record = http.get(f"/v1/generations/{generation_id}")
    assert (record.status_code, record.json()["document"]) == (200, REPLY.text)


def test_a_client_that_gave_up_finds_its_generation_recorded_as_cancelled(
    server: RunningServer, upstream: FakeLlm
) -> None:
    upstream.hang()
    request_id = "e2e-records-gives-up-01"
    with rest(server, timeout=1.0) as http, pytest.raises(httpx.ReadTimeout):
        http.post(GENERATE, json=EXAMPLE, headers={"X-Request-ID": request_id})
    assert upstream.wait_for_hang_up(timeout=BOUND), "the upstream call was not stopped"

    # The access line is written when the handler ends, after the cancelled generation's
    # record (written shielded from the cancellation).
    server.wait_for_line(
        lambda text: f'"request_id":"{request_id}"' in text and '"event":"request"' in text,
        timeout=BOUND,
    )
    with rest(server) as http:
        page = http.get("/v1/generations", params={"outcome": "cancelled"}).json()
    found = [g for g in page["generations"] if g["request_id"] == request_id]
    assert len(found) == 1
    assert (found[0]["outcome"], found[0]["failure"], found[0]["has_document"]) == (
        "cancelled",
        "cancelled",
        False,
    )
