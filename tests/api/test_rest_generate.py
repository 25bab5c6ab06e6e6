"""``POST /v1/prompts/{name}/generate``: the server-side LLM writes a prompt's document."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from domain.generation import LlmMode
from domain.generation_records import is_record_id
from domain.keys import Scope
from domain.llm import (
    LlmBadResponse,
    LlmCircuitOpen,
    LlmRateLimited,
    LlmRejected,
    LlmTimeout,
    LlmUnavailable,
)
from tests.api.harness import BASE_URL, bearer, catalog_of, issue_key, serving
from tests.fakes import ScriptedLlm, served
from tests.integration.prompt_files import prompt, write_prompt, write_unrenderable_prompts

pytestmark = pytest.mark.anyio

MODEL = "gpt-test-2026"
SERVER_LLM: dict[str, Any] = {"llm_base_url": "https://llm.test/v1", "llm_model": MODEL}
CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
GENERATE = "/v1/prompts/context_stack/generate"
GENERATION = {"system_prompt": "You write documents.", "max_tokens": 64}


def with_fake_llm(settings: Settings, llm: ScriptedLlm) -> FastAPI:
    """An app built from ``settings`` whose server-side LLM is ``llm``."""
    return create_app(settings, server_llm=llm)


@pytest.fixture
def app(llm: ScriptedLlm) -> FastAPI:
    """Overrides the conftest app: a server-side LLM is configured, and faked."""
    return with_fake_llm(Settings(**SERVER_LLM), llm)


@pytest.fixture
async def writer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, Scope.WRITE) as client:
        yield client


async def post(client: httpx.AsyncClient, path: str, body: object) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post(path, json=body)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    assert set(body) == {"error", "message", "details"}
    return body


async def test_a_write_key_gets_the_document_the_server_llm_wrote_and_how(
    writer: httpx.AsyncClient,
) -> None:
    response = await post(writer, GENERATE, CONTEXT_STACK)

    assert response.status_code == 200, response.text
    body = response.json()
    generation_id = body.pop("generation_id")
    assert body == served()
    # A fresh record id each time: it is checked by reading the record it names.
    assert is_record_id(generation_id)
    assert response.headers["location"] == f"/v1/generations/{generation_id}"
    record = await writer.get(response.headers["location"])
    assert record.status_code == 200, record.text
    assert record.json()["document"] == body["document"]


async def test_the_server_llm_is_asked_for_the_preview_under_the_prompts_generation_settings(
    app: FastAPI, writer: httpx.AsyncClient, llm: ScriptedLlm, prompt_name: str
) -> None:
    definition = catalog_of(app).get(prompt_name).definition
    body = definition.example_arguments
    preview = (await post(writer, f"/v1/prompts/{prompt_name}/preview", body)).json()
    described = (await writer.get(f"/v1/prompts/{prompt_name}")).json()["generation"]

    response = await post(writer, f"/v1/prompts/{prompt_name}/generate", body)

    assert response.status_code == 200, response.text
    assert (response.json()["prompt"], response.json()["route"]) == (prompt_name, "server")
    (asked,) = llm.requests
    assert [(m.role, m.text) for m in asked.messages] == [
        (m["role"], m["content"]["text"]) for m in preview["messages"]
    ]
    assert (asked.max_tokens, asked.temperature) == (
        described["max_tokens"],
        described["temperature"],
    )
    settings = definition.generation
    assert settings is not None, "every built-in prompt generates"
    assert asked.system_prompt == settings.system_prompt
    assert asked.system_prompt
    assert asked.model_preferences == settings.model_preferences
    assert asked.model_preferences is not None


async def test_a_read_key_is_refused_with_a_403_naming_the_write_scope(
    app: FastAPI, llm: ScriptedLlm
) -> None:
    async with serving(app, Scope.READ) as reader:
        response = await post(reader, GENERATE, CONTEXT_STACK)

    assert error_of(response, 403)["error"] == "insufficient_scope"
    assert 'scope="write"' in response.headers["www-authenticate"]
    assert llm.requests == []


async def test_a_request_without_a_key_is_a_401(app: FastAPI, llm: ScriptedLlm) -> None:
    async with serving(app, scope=None) as anonymous:
        response = await post(anonymous, GENERATE, CONTEXT_STACK)

    assert error_of(response, 401)["error"] == "unauthorized"
    assert llm.requests == []


async def test_without_a_server_llm_generation_is_a_503_saying_what_to_configure() -> None:
    async with serving(create_app(Settings()), Scope.WRITE) as writer:
        response = await post(writer, GENERATE, CONTEXT_STACK)

    body = error_of(response, 503)
    assert body["error"] == "llm_not_configured"
    assert "CTXFY_LLM_BASE_URL" in body["message"]


async def test_a_client_only_policy_keeps_the_configured_server_llm_out(llm: ScriptedLlm) -> None:
    app = with_fake_llm(Settings(**SERVER_LLM, llm_mode=LlmMode.CLIENT), llm)
    async with serving(app, Scope.WRITE) as writer:
        response = await post(writer, GENERATE, CONTEXT_STACK)

    body = error_of(response, 503)
    assert body["error"] == "llm_not_configured"
    assert "CTXFY_LLM_MODE=client" in body["message"]
    assert llm.requests == []


@pytest.mark.parametrize(
    ("llm", "status", "code", "retry_after"),
    [
        pytest.param((LlmRejected(400),), 502, "llm_rejected", None, id="rejected"),
        pytest.param((LlmUnavailable("upstream 503"),), 502, "llm_unavailable", None, id="down"),
        pytest.param((LlmBadResponse("no choices"),), 502, "llm_bad_response", None, id="garbled"),
        pytest.param((LlmTimeout("took too long"),), 504, "llm_timeout", None, id="timeout"),
        pytest.param((LlmRateLimited(12.5),), 503, "llm_rate_limited", "13", id="429-with-hint"),
        pytest.param((LlmRateLimited(None),), 503, "llm_rate_limited", None, id="429-no-hint"),
        pytest.param((LlmCircuitOpen(3.2),), 503, "llm_circuit_open", "4", id="circuit-open"),
    ],
    indirect=["llm"],
)
async def test_each_llm_failure_has_its_status_code_and_retry_hint(
    writer: httpx.AsyncClient,
    llm: ScriptedLlm,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    (failure,) = llm.script

    response = await post(writer, GENERATE, CONTEXT_STACK)

    assert error_of(response, status) == {"error": code, "message": str(failure), "details": []}
    assert response.headers.get("retry-after") == retry_after


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"task": "x"}, {"domain": "missing"}, id="missing-required"),
        pytest.param(CONTEXT_STACK | {"task": 42}, {"task": "string_type"}, id="wrong-type"),
        pytest.param(
            CONTEXT_STACK | {"include_examples": "true"},
            {"include_examples": "bool_type"},
            id="string-for-bool",
        ),
        pytest.param(CONTEXT_STACK | {"colour": "blue"}, {"colour": "extra_forbidden"}, id="extra"),
    ],
)
async def test_an_invalid_body_is_a_422_naming_each_field_and_asks_no_llm(
    writer: httpx.AsyncClient, llm: ScriptedLlm, body: dict[str, Any], expected: dict[str, str]
) -> None:
    response = await post(writer, GENERATE, body)

    error = error_of(response, 422)
    assert error["error"] == "validation_error"
    assert {d["field"]: d["type"] for d in error["details"]} == expected
    assert llm.requests == []


async def test_generating_an_unknown_prompt_is_a_404(writer: httpx.AsyncClient) -> None:
    response = await post(writer, "/v1/prompts/no_such_prompt/generate", CONTEXT_STACK)

    body = error_of(response, 404)
    assert body["error"] == "prompt_not_found"
    assert "no_such_prompt" in body["message"]


async def test_a_prompt_without_generation_settings_has_no_generate_operation(
    tmp_path: Path, llm: ScriptedLlm
) -> None:
    write_prompt(tmp_path, prompt())  # "greet": no generation block
    app = with_fake_llm(Settings(**SERVER_LLM, prompts_dir=tmp_path), llm)
    async with serving(app, Scope.WRITE) as writer:
        response = await post(writer, "/v1/prompts/greet/generate", {"who": "world"})
        previewed = await post(writer, "/v1/prompts/greet/preview", {"who": "world"})

    assert "does not generate" in error_of(response, 404)["message"]
    assert previewed.status_code == 200
    assert llm.requests == []
    paths = app.openapi()["paths"]
    assert "/v1/prompts/greet/preview" in paths
    assert "/v1/prompts/greet/generate" not in paths


async def generate_unrenderable(
    directory: Path, llm: ScriptedLlm, name: str, body: dict[str, Any]
) -> httpx.Response:
    """Generate with one of ``write_unrenderable_prompts``; a crash is answered, not raised."""
    write_unrenderable_prompts(directory, GENERATION)
    app = with_fake_llm(Settings(**SERVER_LLM, prompts_dir=directory), llm)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        headers = bearer(await issue_key(app, Scope.WRITE))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            with anyio.fail_after(10):
                return await client.post(f"/v1/prompts/{name}/generate", json=body, headers=headers)


async def test_arguments_the_template_cannot_render_are_a_422_and_ask_no_llm(
    tmp_path: Path, llm: ScriptedLlm
) -> None:
    response = await generate_unrenderable(tmp_path, llm, "divide", {"n": 0})

    assert error_of(response, 422)["error"] == "prompt_render_failed"
    assert llm.requests == []


async def test_a_message_that_renders_empty_is_left_out_of_the_llm_request(
    tmp_path: Path, llm: ScriptedLlm
) -> None:
    # The preview shows the empty message; an LLM request cannot carry one.
    response = await generate_unrenderable(tmp_path, llm, "maybe", {})

    assert response.status_code == 200, response.text
    [asked] = llm.requests
    assert [(m.role, m.text) for m in asked.messages] == [("user", "Say hello.")]


async def test_a_prompt_that_renders_entirely_empty_is_a_422_and_asks_no_llm(
    tmp_path: Path, llm: ScriptedLlm
) -> None:
    response = await generate_unrenderable(tmp_path, llm, "blank", {})

    body = error_of(response, 422)
    assert body["error"] == "prompt_render_failed"
    assert llm.requests == []


async def test_every_generating_prompt_has_a_typed_generate_operation(app: FastAPI) -> None:
    document = app.openapi()
    paths = document["paths"]
    generating = [e for e in catalog_of(app) if e.definition.generation is not None]
    assert generating

    documented = {path for path in paths if path.endswith("/generate")}
    assert documented == {f"/v1/prompts/{e.name}/generate" for e in generating}
    for entry in generating:
        operation = paths[f"/v1/prompts/{entry.name}/generate"]["post"]
        preview = paths[f"/v1/prompts/{entry.name}/preview"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == preview["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].endswith("/" + entry.argument_model.__name__)
        responses = operation["responses"]
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/GeneratedDocument"
        }
        for status in ("422", "502", "503", "504"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }, (entry.name, status)
