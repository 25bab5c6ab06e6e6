"""The OpenAPI document: one typed, exemplified preview operation per prompt; docs pages."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from domain.prompts import VERSION_PATTERN
from infrastructure.catalog.arguments import model_name
from tests.api.harness import asgi_client, catalog_of

pytestmark = pytest.mark.anyio

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def preview_operation(openapi: dict[str, Any], prompt_name: str) -> dict[str, Any]:
    operation: dict[str, Any] = openapi["paths"][f"/v1/prompts/{prompt_name}/preview"]["post"]
    return operation


async def test_there_is_exactly_one_preview_operation_per_catalog_prompt(
    app: FastAPI, openapi: dict[str, Any]
) -> None:
    previews = [
        operation["operationId"]
        for path, item in openapi["paths"].items()
        if path.endswith("/preview")
        for operation in item.values()
    ]

    assert sorted(previews) == sorted(f"preview_{entry.name}" for entry in catalog_of(app))


async def test_a_preview_operation_takes_the_prompts_own_argument_schema(
    app: FastAPI, openapi: dict[str, Any], prompt_name: str
) -> None:
    entry = catalog_of(app).get(prompt_name)
    schema_name = model_name(entry.definition)

    body = preview_operation(openapi, prompt_name)["requestBody"]

    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{schema_name}"
    }
    component = openapi["components"]["schemas"][schema_name]
    assert list(component["properties"]) == [a.name for a in entry.definition.arguments]
    assert sorted(component.get("required", [])) == sorted(
        a.name for a in entry.definition.arguments if a.required
    )
    assert component["additionalProperties"] is False


async def test_a_preview_operation_carries_the_prompts_example(
    app: FastAPI, openapi: dict[str, Any], prompt_name: str
) -> None:
    definition = catalog_of(app).get(prompt_name).definition

    media = preview_operation(openapi, prompt_name)["requestBody"]["content"]["application/json"]

    assert media["examples"]["example"]["value"] == definition.example_arguments
    assert media["examples"]["example"]["summary"] == definition.title
    component = openapi["components"]["schemas"][model_name(definition)]
    assert component["examples"] == [definition.example_arguments]


async def test_preview_errors_are_documented_with_the_error_body_schema(
    openapi: dict[str, Any], prompt_name: str
) -> None:
    responses = preview_operation(openapi, prompt_name)["responses"]

    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PreviewResponse"
    }
    assert responses["422"]["content"]["application/json"]["schema"] == ERROR_BODY
    # ?version= may name a version the prompt does not have.
    assert "prompt_version_not_found" in responses["404"]["description"]


async def test_describing_documents_pinning_by_query_with_the_version_pattern(
    openapi: dict[str, Any],
) -> None:
    parameters = openapi["paths"]["/v1/prompts/{name}"]["get"]["parameters"]

    (version,) = [p for p in parameters if p["name"] == "version"]
    assert version["in"] == "query"
    assert version["required"] is False
    assert {"type": "string", "pattern": VERSION_PATTERN.pattern} in version["schema"]["anyOf"]


@pytest.mark.parametrize("action", ["preview", "generate"])
async def test_a_typed_operation_points_to_the_other_versions_instead_of_a_version_parameter(
    openapi: dict[str, Any], action: str
) -> None:
    # One operation has one body schema: other versions' bodies are their own operations'.
    operation = openapi["paths"][f"/v1/prompts/context_stack/{action}"]["post"]

    assert "version" not in [p["name"] for p in operation.get("parameters", [])]
    assert f"`context_stack@VERSION/{action}`" in operation["description"]
    assert "`?version=VERSION`" in operation["description"]


@pytest.mark.parametrize(
    "path", ["/v1/prompts", "/v1/prompts/{name}", "/v1/prompts/{name}/versions"]
)
async def test_cacheable_reads_document_their_etag_and_the_304(
    openapi: dict[str, Any], path: str
) -> None:
    operation = openapi["paths"][path]["get"]
    responses = operation["responses"]

    assert set(responses["200"]["headers"]) == {"ETag", "Cache-Control"}
    assert set(responses["304"]["headers"]) == {"ETag", "Cache-Control"}
    assert "content" not in responses["304"]
    assert "If-None-Match" in [p["name"] for p in operation["parameters"]]


async def test_the_catalog_reload_documents_its_refusals(openapi: dict[str, Any]) -> None:
    responses = openapi["paths"]["/v1/catalog/reload"]["post"]["responses"]

    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReloadOut"
    }
    assert "insufficient_scope" in responses["403"]["description"]
    assert "catalog_reload_failed" in responses["409"]["description"]
    assert responses["409"]["content"]["application/json"]["schema"] == ERROR_BODY


async def test_describing_a_prompt_documents_its_404_with_the_error_body(
    openapi: dict[str, Any],
) -> None:
    responses = openapi["paths"]["/v1/prompts/{name}"]["get"]["responses"]

    assert responses["404"]["content"]["application/json"]["schema"] == ERROR_BODY
    assert set(openapi["components"]["schemas"]["ErrorBody"]["properties"]) == {
        "error",
        "message",
        "details",
        "request_id",
    }


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_pages_are_html(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
async def test_with_docs_disabled_the_document_and_pages_are_not_found(path: str) -> None:
    app = create_app(Settings(docs_enabled=False))

    async with asgi_client(app) as client:
        response = await client.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
