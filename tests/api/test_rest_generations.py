"""``GET /v1/generations`` and ``/v1/generations/{id}``: every generation's record, read back
over REST by its owner (or an admin), and named by the generate response that made it."""

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from domain.generation_records import (
    GenerationRecord,
    RecordQuery,
    is_record_id,
    new_record_id,
)
from domain.keys import Scope, parse_key
from domain.llm import LlmUnavailable
from domain.ports import KeyStoreUnavailable
from infrastructure.keystore.sql import SqlKeyStore
from tests.api.harness import asgi_client, bearer, catalog_of, issue_key, state_of
from tests.fakes import ScriptedLlm, SwitchableKeyStore, completion
from tests.records_helpers import a_record

pytestmark = pytest.mark.anyio

MODEL = "gpt-test-2026"
SERVER_LLM: dict[str, Any] = {"llm_base_url": "https://llm.test/v1", "llm_model": MODEL}
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
GENERATE = "/v1/prompts/context_stack/generate"
LIST = "/v1/generations"
SUMMARY_FIELDS = {
    "generation_id",
    "created_at",
    "request_id",
    "key_id",
    "user_id",
    "prompt",
    "prompt_version",
    "route",
    "provider",
    "model",
    "outcome",
    "failure",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "has_document",
}


@dataclass(frozen=True, slots=True)
class People:
    """Clients of one running app: ada (write and read keys), bob (write), an admin."""

    app: FastAPI
    ada: httpx.AsyncClient
    ada_reader: httpx.AsyncClient
    bob: httpx.AsyncClient
    admin: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    ada_key_id: str


async def people_of(app: FastAPI, stack: AsyncExitStack) -> People:
    await stack.enter_async_context(app.router.lifespan_context(app))

    async def client(scope: Scope | None, user: str) -> tuple[httpx.AsyncClient, str]:
        http = await stack.enter_async_context(asgi_client(app))
        if scope is None:
            return http, ""
        key = await issue_key(app, scope, user_id=user)
        http.headers.update(bearer(key))
        return http, parse_key(key).key_id

    ada, ada_key_id = await client(Scope.WRITE, "ada")
    return People(
        app=app,
        ada=ada,
        ada_reader=(await client(Scope.READ, "ada"))[0],
        bob=(await client(Scope.WRITE, "bob"))[0],
        admin=(await client(Scope.ADMIN, "root"))[0],
        anonymous=(await client(None, ""))[0],
        ada_key_id=ada_key_id,
    )


@pytest.fixture
def app(llm: ScriptedLlm) -> FastAPI:
    """Records kept in full (the dev default), a faked server-side LLM."""
    return create_app(Settings(**SERVER_LLM), server_llm=llm)


@pytest.fixture
async def people(app: FastAPI) -> AsyncIterator[People]:
    async with AsyncExitStack() as stack:
        yield await people_of(app, stack)


async def generate(
    client: httpx.AsyncClient, path: str = GENERATE, body: object = CONTEXT_STACK
) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post(path, json=body)


async def generated(client: httpx.AsyncClient) -> str:
    """The id of the record a successful generation by ``client`` names."""
    response = await generate(client)
    assert response.status_code == 200, response.text
    generation_id: str = response.json()["generation_id"]
    assert is_record_id(generation_id)
    return generation_id


async def get(client: httpx.AsyncClient, path: str, **params: str | int) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.get(path, params=params)


async def listed(client: httpx.AsyncClient, **params: str | int) -> list[str]:
    """The ids ``GET /v1/generations`` shows ``client`` (one page)."""
    response = await get(client, LIST, **params)
    assert response.status_code == 200, response.text
    return [summary["generation_id"] for summary in response.json()["generations"]]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    return body


def record(user_id: str, at: datetime, prompt: str = "context_stack") -> GenerationRecord:
    """A record with metadata only: no LLM was picked and nothing was kept."""
    return a_record(
        created_at=at,
        user_id=user_id,
        prompt=prompt,
        request_id=None,
        key_id=None,
        route=None,
        provider=None,
        model=None,
        input_tokens=None,
        output_tokens=None,
        latency_ms=None,
        arguments=None,
        document=None,
    )


async def written(app: FastAPI, records: Sequence[GenerationRecord]) -> None:
    """``records`` stored straight through the app's own port."""
    recorder = state_of(app).recorder
    assert recorder is not None
    port = recorder.records
    assert port is not None
    for each in records:
        await port.add(each)


async def test_a_generate_response_names_its_record_which_its_owner_reads_back_at_once(
    people: People,
) -> None:
    response = await generate(people.ada)

    assert response.status_code == 200, response.text
    generation_id = response.json()["generation_id"]
    assert is_record_id(generation_id)
    assert response.headers["location"] == f"/v1/generations/{generation_id}"
    read = await get(people.ada, response.headers["location"])
    assert read.status_code == 200, read.text
    body = read.json()
    assert body.pop("arguments").items() >= CONTEXT_STACK.items()
    assert datetime.fromisoformat(body.pop("created_at")).tzinfo is not None
    assert body == {
        "generation_id": generation_id,
        "request_id": response.headers["x-request-id"],
        "key_id": people.ada_key_id,
        "user_id": "ada",
        "prompt": "context_stack",
        "prompt_version": "1.0.0",
        "route": "server",
        "provider": completion().provider,
        "model": completion().model,
        "outcome": "ok",
        "failure": None,
        "input_tokens": completion().input_tokens,
        "output_tokens": completion().output_tokens,
        "latency_ms": round(completion().latency_ms, 1),
        "has_document": True,
        "document": completion().text,
    }


@pytest.mark.parametrize(
    ("reader", "status"),
    [
        pytest.param("ada", 200, id="own-write-key"),
        pytest.param("ada_reader", 200, id="own-user-read-key"),
        pytest.param("bob", 404, id="another-user"),
        pytest.param("admin", 200, id="admin"),
    ],
)
async def test_a_record_is_read_by_its_user_and_an_admin_and_is_not_found_by_anyone_else(
    people: People, reader: str, status: int
) -> None:
    generation_id = await generated(people.ada)

    response = await get(getattr(people, reader), f"{LIST}/{generation_id}")

    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["generation_id"] == generation_id
    else:
        assert error_of(response, 404)["error"] == "generation_not_found"


async def test_another_users_record_looks_exactly_like_an_unknown_or_malformed_id(
    people: People,
) -> None:
    generation_id = await generated(people.ada)
    unknown = new_record_id(datetime.now(UTC))

    bodies = [
        error_of(await get(people.bob, f"{LIST}/{path}"), 404)
        for path in (generation_id, unknown, "not-a-record-id", generation_id.lower())
    ]

    assert bodies == [bodies[0]] * 4
    assert bodies[0]["error"] == "generation_not_found"
    assert generation_id not in bodies[0]["message"]


async def test_a_key_lists_its_own_users_records_newest_first_and_an_admin_lists_all(
    people: People,
) -> None:
    first, second = await generated(people.ada), await generated(people.ada)
    bobs = await generated(people.bob)

    assert await listed(people.ada) == [second, first]
    assert await listed(people.ada_reader) == [second, first]
    assert await listed(people.ada, user_id="ada") == [second, first]
    assert await listed(people.bob) == [bobs]
    assert await listed(people.admin) == [bobs, second, first]
    assert await listed(people.admin, user_id="bob") == [bobs]


async def test_naming_another_user_in_the_list_needs_the_admin_scope(people: People) -> None:
    await generated(people.bob)

    response = await get(people.ada, LIST, user_id="bob")

    assert error_of(response, 403)["error"] == "insufficient_scope"
    assert 'scope="admin"' in response.headers["www-authenticate"]


async def test_a_listed_summary_has_the_metadata_and_not_the_content(people: People) -> None:
    generation_id = await generated(people.ada)

    response = await get(people.ada, LIST)

    assert response.status_code == 200, response.text
    (summary,) = response.json()["generations"]
    assert set(summary) == SUMMARY_FIELDS
    assert (summary["generation_id"], summary["has_document"]) == (generation_id, True)
    assert completion().text not in response.text
    assert CONTEXT_STACK["task"] not in response.text
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize("llm", [(LlmUnavailable("upstream 503"), completion())], indirect=True)
async def test_a_failed_generation_is_listed_with_its_error_and_no_document(
    people: People,
) -> None:
    failed = await generate(people.ada)
    assert failed.status_code == 502, failed.text
    assert "location" not in failed.headers
    succeeded = await generated(people.ada)

    errors = await get(people.ada, LIST, outcome="error")
    assert errors.status_code == 200, errors.text
    (summary,) = errors.json()["generations"]
    assert (summary["outcome"], summary["failure"]) == ("error", "llm_unavailable")
    assert summary["has_document"] is False
    assert summary["request_id"] == failed.headers["x-request-id"]
    assert await listed(people.ada, outcome="ok") == [succeeded]
    detail = (await get(people.ada, f"{LIST}/{summary['generation_id']}")).json()
    assert (detail["document"], detail["outcome"]) == (None, "error")


async def test_the_list_filters_by_prompt_and_since(people: People) -> None:
    other = next(
        entry
        for entry in catalog_of(people.app)
        if entry.definition.generation is not None and entry.name != "context_stack"
    )
    stack = await generated(people.ada)
    response = await generate(
        people.ada, f"/v1/prompts/{other.name}/generate", other.definition.example_arguments
    )
    assert response.status_code == 200, response.text
    others = response.json()["generation_id"]
    created = (await get(people.ada, f"{LIST}/{stack}")).json()["created_at"]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    assert await listed(people.ada, prompt="context_stack") == [stack]
    assert await listed(people.ada, prompt=other.name) == [others]
    assert await listed(people.ada, prompt="no_such_prompt") == []
    assert await listed(people.ada, since=created) == [others, stack]
    assert await listed(people.ada, since=future) == []
    # Valid RFC 3339, though outside what UTC can name: before or after every record.
    assert await listed(people.ada, since="0001-01-01T00:00:00+23:59") == [others, stack]
    assert await listed(people.ada, since="9999-12-31T23:59:59-23:59") == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("since", "2026-12-01T09:00:00", id="naive-since"),
        pytest.param("since", "2026-12-01", id="date-only-since"),
        pytest.param("since", "1764579600", id="epoch-since"),
        pytest.param("since", "2026-13-01T09:00:00Z", id="impossible-since"),
        pytest.param("outcome", "done", id="unknown-outcome"),
        pytest.param("prompt", "Context Stack", id="malformed-prompt"),
        pytest.param("cursor", "gen_123", id="malformed-cursor"),
        pytest.param("limit", "0", id="limit-0"),
        pytest.param("limit", "101", id="limit-101"),
        pytest.param("user_id", "a b", id="malformed-user"),
    ],
)
async def test_a_malformed_filter_is_a_422_naming_it(people: People, name: str, value: str) -> None:
    response = await get(people.admin, LIST, **{name: value})

    body = error_of(response, 422)
    assert body["error"] == "validation_error"
    assert [detail["field"] for detail in body["details"]] == [name]


async def test_pages_follow_the_cursor_without_repeats_or_skips_while_records_are_written(
    people: People,
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    older = [record("ada", start + timedelta(seconds=i)) for i in range(5)]
    await written(people.app, older)
    newest_first = [r.record_id for r in reversed(older)]

    seen: list[str] = []
    pages: list[int] = []
    cursor: str | None = None
    for _ in range(len(older)):  # bounded: a cursor that loops fails the test
        params: dict[str, str | int] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await get(people.ada, LIST, **params)).json()
        seen += [summary["generation_id"] for summary in page["generations"]]
        pages.append(len(page["generations"]))
        # Written between pages, and newer than any cursor: it belongs to no later page.
        await generated(people.ada)
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == newest_first
    assert pages == [2, 2, 1]


async def test_a_full_page_of_the_largest_size_says_whether_one_more_follows(
    people: People,
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    records = [record("ada", start + timedelta(seconds=i)) for i in range(101)]
    await written(people.app, records[1:])

    exactly = (await get(people.ada, LIST, limit=100)).json()
    await written(people.app, records[:1])
    first = (await get(people.ada, LIST, limit=100)).json()
    second = (await get(people.ada, LIST, limit=100, cursor=first["next_cursor"])).json()

    assert (len(exactly["generations"]), exactly["next_cursor"]) == (100, None)
    assert first["next_cursor"] == records[1].record_id
    assert [s["generation_id"] for s in second["generations"]] == [records[0].record_id]
    assert second["next_cursor"] is None


async def test_under_the_metadata_policy_a_record_keeps_no_arguments_or_document(
    llm: ScriptedLlm,
) -> None:
    app = create_app(Settings(**SERVER_LLM, generation_records="metadata"), server_llm=llm)
    async with AsyncExitStack() as stack:
        people = await people_of(app, stack)
        generation_id = await generated(people.ada)
        body = (await get(people.ada, f"{LIST}/{generation_id}")).json()
        (summary,) = (await get(people.ada, LIST)).json()["generations"]

    assert (body["arguments"], body["document"], body["has_document"]) == (None, None, False)
    assert (body["outcome"], body["output_tokens"]) == ("ok", completion().output_tokens)
    assert summary["has_document"] is False


async def test_with_records_off_a_generation_names_no_record_and_none_is_listed(
    llm: ScriptedLlm,
) -> None:
    app = create_app(Settings(**SERVER_LLM, generation_records="off"), server_llm=llm)
    async with AsyncExitStack() as stack:
        people = await people_of(app, stack)
        response = await generate(people.ada)
        page = (await get(people.admin, LIST)).json()

    assert response.status_code == 200, response.text
    assert response.json()["generation_id"] is None
    assert "location" not in response.headers
    assert page == {"generations": [], "next_cursor": None}


async def test_a_key_store_without_records_lists_none_and_finds_none(
    llm: ScriptedLlm, tmp_path: Path
) -> None:
    store = SwitchableKeyStore(SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}"))
    app = create_app(Settings(**SERVER_LLM), server_llm=llm, key_store=store)
    async with AsyncExitStack() as stack:
        people = await people_of(app, stack)
        response = await generate(people.ada)
        page = (await get(people.admin, LIST)).json()
        reading = await get(people.admin, f"{LIST}/{new_record_id(datetime.now(UTC))}")

    assert response.status_code == 200, response.text
    assert response.json()["generation_id"] is None
    assert page == {"generations": [], "next_cursor": None}
    assert error_of(reading, 404)["error"] == "generation_not_found"


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


async def test_while_the_records_store_is_down_generation_works_and_reads_are_a_503(
    llm: ScriptedLlm,
) -> None:
    app = create_app(
        Settings(**SERVER_LLM), server_llm=llm, generation_records=UnreachableRecords()
    )
    async with AsyncExitStack() as stack:
        people = await people_of(app, stack)
        response = await generate(people.ada)
        listing = await get(people.ada, LIST)
        reading = await get(people.ada, f"{LIST}/{new_record_id(datetime.now(UTC))}")

    assert response.status_code == 200, response.text
    assert response.json()["generation_id"] is None
    assert "location" not in response.headers
    for refused in (listing, reading):
        assert error_of(refused, 503)["error"] == "key_store_unavailable"
        assert refused.headers["retry-after"]
        assert "down" not in refused.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param(LIST, 200, id="list"),
        pytest.param(f"{LIST}/gen_01KBD3M2Z8Q4V7W9X0Y1Z2A3B4", 404, id="read"),
    ],
)
async def test_reading_records_needs_a_key_and_a_read_key_is_enough(
    people: People, path: str, status: int
) -> None:
    refused = await get(people.anonymous, path)
    answered = await get(people.ada_reader, path)

    assert error_of(refused, 401)["error"] == "unauthorized"
    assert answered.status_code == status, answered.text


def test_the_openapi_document_describes_both_operations_and_the_location_header(
    app: FastAPI,
) -> None:
    paths = app.openapi()["paths"]

    listing = paths[LIST]["get"]
    reading = paths[f"{LIST}/{{generation_id}}"]["get"]
    location = paths[GENERATE]["post"]["responses"]["200"]["headers"]["Location"]
    assert {p["name"] for p in listing["parameters"]} == {
        "prompt",
        "outcome",
        "since",
        "user_id",
        "cursor",
        "limit",
    }
    assert {"200", "401", "403", "422", "503"} <= set(listing["responses"])
    assert {"200", "401", "404", "503"} <= set(reading["responses"])
    assert "/v1/generations/" in location["description"]
    assert location["schema"]["type"] == "string"
