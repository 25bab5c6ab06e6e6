"""Generation records over MCP: every tool result links to ``ctxfy://generations/{id}``, and
``resources/read`` of the link returns the record to its owner, in both protocol eras."""

import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastmcp import Client
from mcp import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from app.main import create_app
from app.settings import Settings
from domain.generation_records import GenerationRecord, RecordQuery, new_record_id
from domain.keys import Scope
from domain.ports import GenerationRecords, KeyStoreUnavailable
from tests.api.harness import issue_key, mcp_over_http, serving, state_of
from tests.fakes import ScriptedLlm, completion

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
ERAS = pytest.mark.parametrize("mode", ["legacy", MODERN], ids=["legacy", "2026-07-28"])
SERVER_LLM: dict[str, Any] = {"llm_base_url": "https://llm.test/v1", "llm_model": "gpt-test"}
TOOL = "generate_context_stack"
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
TEMPLATE = "ctxfy://generations/{generation_id}"


@pytest.fixture
def app(llm: ScriptedLlm) -> FastAPI:
    """Records kept in full (the dev default), a faked server-side LLM."""
    return create_app(Settings(**SERVER_LLM), server_llm=llm)


@pytest.fixture
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with serving(app, None):
        yield app


async def generate(app: FastAPI, key: str, mode: str) -> tuple[dict[str, Any], list[Any]]:
    """One generation over HTTP: its structured content and its content blocks."""
    with anyio.fail_after(10):
        async with mcp_over_http(app, key=key, mode=mode) as writer:
            result = await writer.call_tool(TOOL, CONTEXT_STACK)
    assert result.structured_content is not None
    return result.structured_content, list(result.content)


async def read(app: FastAPI, key: str, uri: str, mode: str) -> list[TextResourceContents]:
    """``resources/read`` of ``uri`` by a fresh client presenting ``key``: text contents."""
    with anyio.fail_after(10):
        async with mcp_over_http(app, key=key, mode=mode) as reader:
            contents = await reader.read_resource(uri)
    texts = [c for c in contents if isinstance(c, TextResourceContents)]
    assert len(texts) == len(contents)
    return texts


async def refusal(app: FastAPI, key: str, uri: str, mode: str) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await read(app, key, uri, mode)
    return caught.value


async def generated_by(app: FastAPI, user_id: str, mode: str) -> str:
    """The URI of a new record of ``user_id``'s."""
    structured, _ = await generate(app, await issue_key(app, Scope.WRITE, user_id), mode)
    return f"ctxfy://generations/{structured['generation_id']}"


@ERAS
async def test_a_tool_result_links_to_its_record_next_to_the_document(
    running: FastAPI, mode: str
) -> None:
    structured, content = await generate(running, await issue_key(running, Scope.WRITE), mode)

    text, link = content
    assert isinstance(text, TextContent)
    assert text.text == completion().text
    assert isinstance(link, ResourceLink)
    assert structured["generation_id"].startswith("gen_")
    assert link.uri == f"ctxfy://generations/{structured['generation_id']}"
    assert (link.name, link.mime_type) == (structured["generation_id"], "text/markdown")
    assert link.description


@ERAS
async def test_a_client_that_lost_the_tool_result_reads_the_document_back(
    running: FastAPI, mode: str
) -> None:
    key = await issue_key(running, Scope.WRITE, "alice")
    structured, _ = await generate(running, key, mode)
    # A new connection, as after a dropped answer: all it kept is the id.
    document, metadata = await read(
        running, key, f"ctxfy://generations/{structured['generation_id']}", mode
    )

    assert (document.mime_type, document.text) == ("text/markdown", completion().text)
    assert metadata.mime_type == "application/json"
    fields = json.loads(metadata.text)
    assert fields["generation_id"] == structured["generation_id"]
    assert (fields["user_id"], fields["prompt"], fields["prompt_version"]) == (
        "alice",
        "context_stack",
        "1.0.0",
    )
    assert (fields["outcome"], fields["route"], fields["model"]) == (
        "ok",
        "server",
        completion().model,
    )
    assert fields["arguments"].items() >= CONTEXT_STACK.items()  # validated, defaults filled
    assert "document" not in fields  # it is the first content, not repeated


@ERAS
async def test_a_stateless_server_links_and_reads_records_alike(
    llm: ScriptedLlm, mode: str
) -> None:
    app = create_app(Settings(**SERVER_LLM, mcp_stateless=True), server_llm=llm)
    async with serving(app, None):
        key = await issue_key(app, Scope.WRITE)
        structured, content = await generate(app, key, mode)
        document, _ = await read(app, key, content[1].uri, mode)

    assert content[1].uri == f"ctxfy://generations/{structured['generation_id']}"
    assert document.text == completion().text


@ERAS
async def test_the_template_is_advertised_to_every_key(running: FastAPI, mode: str) -> None:
    key = await issue_key(running, Scope.READ)
    with anyio.fail_after(10):
        async with mcp_over_http(running, key=key, mode=mode) as reader:
            templates = await reader.list_resource_templates()

    (template,) = [t for t in templates if t.uri_template == TEMPLATE]
    assert template.mime_type == "text/markdown"
    assert template.description


@ERAS
@pytest.mark.parametrize(
    ("reader", "scope", "readable"),
    [
        ("alice", Scope.READ, True),
        ("alice", Scope.WRITE, True),
        ("bob", Scope.READ, False),
        ("bob", Scope.WRITE, False),
        ("root", Scope.ADMIN, True),
    ],
    ids=["own-read", "own-write", "other-read", "other-write", "admin"],
)
async def test_a_key_reads_its_own_users_records_and_an_admin_reads_anyones(
    running: FastAPI, mode: str, reader: str, scope: Scope, readable: bool
) -> None:
    uri = await generated_by(running, "alice", mode)
    key = await issue_key(running, scope, reader)

    if readable:
        contents = await read(running, key, uri, mode)
        assert json.loads(contents[-1].text)["user_id"] == "alice"
    else:
        refused = await refusal(running, key, uri, mode)
        assert (refused.code, refused.message) == (INVALID_PARAMS, f"Resource not found: {uri!r}")


@ERAS
async def test_another_users_unknown_and_malformed_ids_are_refused_alike(
    running: FastAPI, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    others = await generated_by(running, "alice", mode)
    unknown = f"ctxfy://generations/{new_record_id(datetime.now(UTC))}"
    malformed = "ctxfy://generations/not-an-id"
    key = await issue_key(running, Scope.WRITE, "bob")

    with caplog.at_level(logging.DEBUG, logger="fastmcp"):
        refused = [await refusal(running, key, uri, mode) for uri in (others, unknown, malformed)]
    # A caller's wrong id is not the server's error: no ERROR line, no traceback.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # What FastMCP answers for a URI that no template matches at all.
    nowhere = await refusal(running, key, "ctxfy://nowhere/x", mode)

    shapes = {(e.code, e.message.replace(repr(e.data["uri"]), "<uri>")) for e in refused}
    assert shapes == {(nowhere.code, nowhere.message.replace("'ctxfy://nowhere/x'", "<uri>"))}
    assert [e.data for e in refused] == [{"uri": u} for u in (others, unknown, malformed)]


async def test_with_records_off_a_result_carries_no_link_and_no_id(llm: ScriptedLlm) -> None:
    app = create_app(Settings(**SERVER_LLM, generation_records="off"), server_llm=llm)
    async with serving(app, None):
        structured, content = await generate(app, await issue_key(app, Scope.WRITE), MODERN)
        records = state_records(app)
        kept = await records.list(RecordQuery(user_id=None))

    assert structured["generation_id"] is None
    assert [type(c) for c in content] == [TextContent]
    assert kept == []


async def test_a_metadata_record_reads_back_without_its_document_or_arguments(
    llm: ScriptedLlm,
) -> None:
    app = create_app(Settings(**SERVER_LLM, generation_records="metadata"), server_llm=llm)
    async with serving(app, None):
        key = await issue_key(app, Scope.WRITE)
        structured, _ = await generate(app, key, MODERN)
        contents = await read(
            app, key, f"ctxfy://generations/{structured['generation_id']}", MODERN
        )

    (metadata,) = contents
    assert metadata.mime_type == "application/json"
    fields = json.loads(metadata.text)
    assert (fields["outcome"], fields["arguments"]) == ("ok", None)
    assert completion().text not in metadata.text


class UnreachableRecords:
    """A ``GenerationRecords`` whose database is down."""

    async def add(self, record: GenerationRecord) -> None:
        raise KeyStoreUnavailable("records database is down")

    async def get(self, record_id: str, *, user_id: str | None) -> GenerationRecord | None:
        raise KeyStoreUnavailable("records database is down")

    async def list(self, query: RecordQuery) -> Sequence[GenerationRecord]:
        raise KeyStoreUnavailable("records database is down")

    async def purge(self, older_than: datetime) -> int:
        raise KeyStoreUnavailable("records database is down")


async def test_a_records_outage_costs_the_document_its_link_and_a_read_a_clear_error(
    llm: ScriptedLlm,
) -> None:
    app = create_app(
        Settings(**SERVER_LLM), server_llm=llm, generation_records=UnreachableRecords()
    )
    async with serving(app, None):
        key = await issue_key(app, Scope.WRITE)
        structured, content = await generate(app, key, MODERN)
        uri = f"ctxfy://generations/{new_record_id(datetime.now(UTC))}"
        refused = await refusal(app, key, uri, MODERN)

    assert structured["document"] == completion().text
    assert structured["generation_id"] is None
    assert [type(c) for c in content] == [TextContent]
    assert refused.code == INTERNAL_ERROR
    assert "unavailable" in refused.message
    assert "down" not in refused.message  # the store's own words stay in the log


async def test_the_in_memory_transport_without_an_identity_reads_no_record(
    running: FastAPI,
) -> None:
    uri = await generated_by(running, "alice", MODERN)

    with anyio.fail_after(10), pytest.raises(MCPError) as refused:
        async with Client(running.state.ctxfy.mcp) as anonymous:
            await anonymous.read_resource(uri)

    assert refused.value.message == f"Resource not found: {uri!r}"


def state_records(app: FastAPI) -> GenerationRecords:
    recorder = state_of(app).recorder
    assert recorder is not None
    assert recorder.records is not None
    return recorder.records
