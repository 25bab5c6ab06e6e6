"""Prompt versions over REST: listings, describing, previewing and generating a pinned version
(``name@version`` in the path or ``?version=``), and the errors around them."""

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from domain.keys import Scope
from domain.prompts import VERSION_PATTERN
from tests.api.catalog_files import (
    ARGUMENT_OF,
    CURRENT,
    NAME,
    body_for,
    rendered,
    versioned_app,
    versioned_prompts,
)
from tests.api.harness import serving
from tests.fakes import ScriptedLlm

pytestmark = pytest.mark.anyio

NEWEST_FIRST = ["2.0.0", "1.1.0", "1.0.0"]
# The three ways to ask for version 1.0.0 of an operation, and the plain path.
PINS = {
    "path": "/v1/prompts/greet@1.0.0",
    "encoded": "/v1/prompts/greet%401.0.0",
    "query": "/v1/prompts/greet{suffix}?version=1.0.0",
}


def pinned(way: str, suffix: str = "") -> str:
    """The path that pins 1.0.0 in ``way``, for the operation at ``suffix``."""
    template = PINS[way]
    return template.format(suffix=suffix) if way == "query" else template + suffix


@pytest.fixture
def app(tmp_path: Path, llm: ScriptedLlm) -> FastAPI:
    return versioned_app(versioned_prompts(tmp_path / "prompts"), llm)


@pytest.fixture
async def writer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, Scope.WRITE) as client:
        yield client


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None
) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.request(method, path, json=body)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_the_listing_shows_a_prompt_once_in_its_current_version_with_its_versions(
    client: httpx.AsyncClient,
) -> None:
    listed = (await call(client, "GET", "/v1/prompts")).json()["prompts"]

    (greet,) = [p for p in listed if p["name"] == NAME]
    assert greet["version"] == CURRENT
    assert greet["deprecated"] is False
    assert greet["versions"] == NEWEST_FIRST
    assert [a["name"] for a in greet["arguments"]] == [ARGUMENT_OF[CURRENT]]
    assert all(p["versions"] == ["1.0.0"] for p in listed if p["name"] != NAME)


async def test_describing_a_prompt_unpinned_gives_its_current_version(
    client: httpx.AsyncClient,
) -> None:
    body = (await call(client, "GET", "/v1/prompts/greet")).json()

    assert (body["version"], body["current"], body["deprecated"]) == (CURRENT, True, False)
    assert body["versions"] == NEWEST_FIRST
    assert list(body["arguments_schema"]["properties"]) == [ARGUMENT_OF[CURRENT]]


@pytest.mark.parametrize("way", PINS)
async def test_describing_a_pinned_version_gives_that_version(
    client: httpx.AsyncClient, way: str
) -> None:
    response = await call(client, "GET", pinned(way))

    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["current"], body["title"]) == ("1.0.0", False, "Greet 1.0.0")
    assert list(body["arguments_schema"]["properties"]) == ["who"]
    assert body["example"] == {"who": "world"}


async def test_a_deprecated_version_is_described_as_deprecated_and_still_served(
    client: httpx.AsyncClient,
) -> None:
    described = (await call(client, "GET", "/v1/prompts/greet@2.0.0")).json()
    preview = await call(client, "POST", "/v1/prompts/greet@2.0.0/preview", body_for("2.0.0"))

    assert (described["version"], described["deprecated"]) == ("2.0.0", True)
    assert preview.status_code == 200
    assert (preview.json()["version"], preview.json()["deprecated"]) == ("2.0.0", True)


async def test_an_unpinned_preview_renders_the_current_version_and_says_which(
    client: httpx.AsyncClient,
) -> None:
    response = await call(client, "POST", "/v1/prompts/greet/preview", body_for(CURRENT))

    assert response.status_code == 200
    preview = response.json()
    assert (preview["prompt"], preview["version"], preview["deprecated"]) == (NAME, CURRENT, False)
    assert preview["messages"][0]["content"]["text"] == rendered(CURRENT)


@pytest.mark.parametrize("way", PINS)
async def test_a_pinned_preview_takes_and_renders_that_versions_own_arguments(
    client: httpx.AsyncClient, way: str
) -> None:
    response = await call(client, "POST", pinned(way, "/preview"), body_for("1.0.0"))

    assert response.status_code == 200, response.text
    assert response.json()["version"] == "1.0.0"
    assert response.json()["messages"][0]["content"]["text"] == rendered("1.0.0")


@pytest.mark.parametrize("way", PINS)
async def test_a_pinned_preview_refuses_the_current_versions_arguments(
    client: httpx.AsyncClient, way: str
) -> None:
    response = await call(client, "POST", pinned(way, "/preview"), body_for(CURRENT))

    fields = {d["field"]: d["type"] for d in error_of(response, 422)["details"]}
    assert fields == {"who": "missing", "person": "extra_forbidden"}


@pytest.mark.parametrize("way", PINS)
async def test_a_pinned_generation_writes_from_that_versions_messages(
    writer: httpx.AsyncClient, llm: ScriptedLlm, way: str
) -> None:
    response = await call(writer, "POST", pinned(way, "/generate"), body_for("1.0.0"))

    assert response.status_code == 200, response.text
    document = response.json()
    assert (document["prompt"], document["version"], document["deprecated"]) == (
        NAME,
        "1.0.0",
        False,
    )
    (request,) = llm.requests
    assert [m.text for m in request.messages if m.role == "user"] == [rendered("1.0.0")]


async def test_an_unpinned_generation_writes_from_the_current_version(
    writer: httpx.AsyncClient, llm: ScriptedLlm
) -> None:
    response = await call(writer, "POST", "/v1/prompts/greet/generate", body_for(CURRENT))

    assert response.json()["version"] == CURRENT
    (request,) = llm.requests
    assert [m.text for m in request.messages if m.role == "user"] == [rendered(CURRENT)]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/prompts/greet@9.9.9"),
        ("GET", "/v1/prompts/greet?version=9.9.9"),
        ("POST", "/v1/prompts/greet@9.9.9/preview"),
        ("POST", "/v1/prompts/greet/preview?version=9.9.9"),
        ("POST", "/v1/prompts/greet%409.9.9/generate"),
        ("POST", "/v1/prompts/greet/generate?version=9.9.9"),
    ],
)
async def test_an_unknown_version_is_a_404_naming_the_versions_that_exist(
    writer: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await call(writer, method, path, body_for(CURRENT))

    body = error_of(response, 404)
    assert body["error"] == "prompt_version_not_found"
    assert "9.9.9" in body["message"]
    assert "2.0.0, 1.1.0, 1.0.0" in body["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/prompts/greet@1.0.0?version=1.1.0"),
        ("POST", "/v1/prompts/greet@1.0.0/preview?version=1.1.0"),
        ("POST", "/v1/prompts/greet@1.0.0/generate?version=1.1.0"),
        ("POST", "/v1/prompts/greet@9.9.9/preview?version=1.1.0"),
    ],
)
async def test_a_path_pin_and_a_different_query_pin_are_a_404_naming_both(
    writer: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await call(writer, method, path, body_for("1.0.0"))

    body = error_of(response, 404)
    assert body["error"] == "prompt_not_found"
    assert "is pinned to" in body["message"]
    assert "1.1.0" in body["message"]


@pytest.mark.parametrize(
    ("query", "served"),
    [("%76ersion=1.0.0", "1.0.0"), ("version=1.0.0&version=1.1.0", "1.1.0")],
    ids=["encoded-name", "last-one-counts"],
)
async def test_a_query_pin_is_read_as_the_routes_read_queries(
    client: httpx.AsyncClient, query: str, served: str
) -> None:
    response = await call(client, "POST", f"/v1/prompts/greet/preview?{query}", body_for(served))

    assert response.status_code == 200, response.text
    assert response.json()["version"] == served


async def test_a_path_pin_and_the_same_query_pin_agree(client: httpx.AsyncClient) -> None:
    path = "/v1/prompts/greet@1.0.0/preview?version=1.0.0"

    response = await call(client, "POST", path, body_for("1.0.0"))

    assert response.json()["version"] == "1.0.0"


@pytest.mark.parametrize("value", ["latest", "1.0", "01.0.0", "1.0.0-beta", "1.0.0\n", ""])
@pytest.mark.parametrize(
    ("method", "path", "version"),
    [
        ("GET", "/v1/prompts/greet", CURRENT),
        ("POST", "/v1/prompts/greet/preview", CURRENT),
        ("POST", "/v1/prompts/greet/generate", CURRENT),
        ("POST", "/v1/prompts/greet@1.0.0/preview", "1.0.0"),
        ("POST", "/v1/prompts/greet@1.0.0/generate", "1.0.0"),
        ("POST", "/v1/prompts/nope/preview", CURRENT),
    ],
)
async def test_a_query_version_that_is_no_version_is_a_422_naming_the_field(
    writer: httpx.AsyncClient, method: str, path: str, version: str, value: str
) -> None:
    assert VERSION_PATTERN.fullmatch(value) is None
    query = httpx.QueryParams({"version": value})

    response = await call(writer, method, f"{path}?{query}", body_for(version))

    body = error_of(response, 422)
    assert [d["field"] for d in body["details"]] == ["version"]


async def test_an_unknown_prompt_pinned_is_a_404_naming_the_prompt(
    client: httpx.AsyncClient,
) -> None:
    response = await call(client, "POST", "/v1/prompts/nope/preview?version=1.0.0", {})

    body = error_of(response, 404)
    assert body["error"] == "prompt_not_found"
    assert "'nope'" in body["message"]


async def test_the_versions_of_a_prompt_are_listed_newest_first_with_what_each_takes(
    client: httpx.AsyncClient,
) -> None:
    response = await call(client, "GET", "/v1/prompts/greet/versions")

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["current"], body["count"]) == (NAME, CURRENT, 3)
    assert [
        (v["version"], v["deprecated"], v["current"], v["title"]) for v in body["versions"]
    ] == [
        ("2.0.0", True, False, "Greet 2.0.0"),
        ("1.1.0", False, True, "Greet 1.1.0"),
        ("1.0.0", False, False, "Greet 1.0.0"),
    ]
    assert [[a["name"] for a in v["arguments"]] for v in body["versions"]] == [
        ["target"],
        ["person"],
        ["who"],
    ]
    assert all(v["generation"] == {"max_tokens": 64, "temperature": None} for v in body["versions"])
    assert body["versions"][0]["description"] == "Says hello, version 2.0.0."


@pytest.mark.parametrize("name", ["nope", "greet@1.0.0"])
async def test_the_versions_of_an_unknown_prompt_are_a_404(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await call(client, "GET", f"/v1/prompts/{name}/versions")

    assert error_of(response, 404)["error"] == "prompt_not_found"


def access_lines(log: io.StringIO) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line]
    return {line["path"]: line for line in lines if line["event"] == "request"}


async def test_every_request_that_serves_a_prompt_names_its_version_on_the_access_line(
    log: io.StringIO, writer: httpx.AsyncClient
) -> None:
    await call(writer, "GET", "/v1/prompts/greet")
    await call(writer, "POST", "/v1/prompts/greet/preview?version=1.0.0", body_for("1.0.0"))
    await call(writer, "POST", "/v1/prompts/greet%401.0.0/generate", body_for("1.0.0"))
    await call(writer, "POST", "/v1/prompts/greet@2.0.0/preview", body_for("2.0.0"))

    lines = access_lines(log)
    served = {
        path: (line["prompt"], line["prompt_version"], line["level"], line.get("warning"))
        for path, line in lines.items()
        if path.startswith("/v1/prompts/")
    }
    assert served == {
        "/v1/prompts/greet": (NAME, CURRENT, "info", None),
        "/v1/prompts/greet/preview": (NAME, "1.0.0", "info", None),
        "/v1/prompts/greet%401.0.0/generate": (NAME, "1.0.0", "info", None),
        "/v1/prompts/greet@2.0.0/preview": (NAME, "2.0.0", "warning", "deprecated_prompt_version"),
    }


async def test_every_other_version_has_typed_operations_of_its_own_in_openapi(
    client: httpx.AsyncClient,
) -> None:
    openapi = (await client.get("/openapi.json")).json()
    paths, schemas = openapi["paths"], openapi["components"]["schemas"]

    def operation(path: str) -> tuple[str, str, bool]:
        post = paths[path]["post"]
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return post["operationId"], ref.rsplit("/", 1)[-1], post.get("deprecated", False)

    assert operation("/v1/prompts/greet/preview") == ("preview_greet", "GreetArguments", False)
    assert operation("/v1/prompts/greet/generate") == ("generate_greet", "GreetArguments", False)
    assert operation("/v1/prompts/greet@1.0.0/preview") == (
        "preview_greet_v1_0_0",
        "GreetArgumentsV1_0_0",
        False,
    )
    assert operation("/v1/prompts/greet@2.0.0/generate") == (
        "generate_greet_v2_0_0",
        "GreetArgumentsV2_0_0",
        True,
    )
    assert "/v1/prompts/greet@1.1.0/preview" not in paths, "the current version is unpinned"
    for name, version in [("GreetArguments", CURRENT), ("GreetArgumentsV1_0_0", "1.0.0")]:
        assert list(schemas[name]["properties"]) == [ARGUMENT_OF[version]]
        assert schemas[name]["title"] == name
        assert schemas[name]["examples"] == [body_for(version, "world")]
        assert schemas[name]["additionalProperties"] is False
