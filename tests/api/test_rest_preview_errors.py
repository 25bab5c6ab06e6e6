"""Preview requests that cannot be rendered: always a JSON error body, never a 500."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from domain.prompts import Scalar
from tests.api.harness import catalog_of

pytestmark = pytest.mark.anyio

PREVIEW = "/v1/prompts/context_stack/preview"


def context_stack_example(app: FastAPI) -> dict[str, Scalar]:
    return catalog_of(app).get("context_stack").definition.example_arguments


def max_length_of(app: FastAPI, argument: str) -> int:
    declared = catalog_of(app).get("context_stack").definition.argument(argument)
    assert declared is not None
    assert declared.effective_max_length is not None
    return declared.effective_max_length


def bad_fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["message"]
    return {detail["field"]: detail["type"] for detail in body["details"]}


@pytest.mark.parametrize(
    ("changes", "removed", "expected"),
    [
        pytest.param({}, "domain", {"domain": "missing"}, id="missing-required"),
        pytest.param({"task": 42}, None, {"task": "string_type"}, id="number-for-string"),
        pytest.param(
            {"include_examples": "maybe"}, None, {"include_examples": "bool_type"}, id="bool"
        ),
        pytest.param({"colour": "blue"}, None, {"colour": "extra_forbidden"}, id="unknown-extra"),
        pytest.param(
            {"output_format": "pdf"}, None, {"output_format": "literal_error"}, id="not-a-choice"
        ),
        pytest.param(
            {"task": None, "output_format": "pdf"},
            "domain",
            {"task": "string_type", "output_format": "literal_error", "domain": "missing"},
            id="several-at-once",
        ),
    ],
)
async def test_invalid_arguments_are_a_422_naming_each_bad_field(
    app: FastAPI,
    client: httpx.AsyncClient,
    changes: dict[str, Any],
    removed: str | None,
    expected: dict[str, str],
) -> None:
    body: dict[str, Any] = context_stack_example(app) | changes
    body.pop(removed or "", None)

    response = await client.post(PREVIEW, json=body)

    assert bad_fields(response) == expected


async def test_a_string_over_its_max_length_is_a_422_naming_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    too_long = "x" * (max_length_of(app, "domain") + 1)

    response = await client.post(PREVIEW, json=context_stack_example(app) | {"domain": too_long})

    assert bad_fields(response) == {"domain": "string_too_long"}


async def test_a_string_at_its_max_length_is_accepted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    at_limit = "x" * max_length_of(app, "domain")

    response = await client.post(PREVIEW, json=context_stack_example(app) | {"domain": at_limit})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"task"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_a_422_naming_the_body(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(
        PREVIEW, content=content, headers={"content-type": "application/json"}
    )

    assert set(bad_fields(response)) == {"body"}


async def test_a_missing_body_is_a_422_naming_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(PREVIEW)

    assert bad_fields(response) == {"body": "missing"}


async def test_invalid_json_is_a_422_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        PREVIEW, content=b'{"task": "x",', headers={"content-type": "application/json"}
    )

    assert list(bad_fields(response).values()) == ["json_invalid"]


async def test_invalid_json_names_the_body_not_a_character_offset(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        PREVIEW, content=b'{"task": "x",', headers={"content-type": "application/json"}
    )

    assert bad_fields(response) == {"body": "json_invalid"}


async def test_a_boolean_for_an_integer_argument_is_a_422_naming_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/prompts/adr/preview", json={"decision_topic": "Service auth", "adr_number": True}
    )

    assert "adr_number" in bad_fields(response)


async def test_previewing_an_unknown_prompt_is_a_404_with_the_error_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/prompts/no_such_prompt/preview", json={"task": "x"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "prompt_not_found"
    assert "no_such_prompt" in body["message"]
    assert body["details"] == []
