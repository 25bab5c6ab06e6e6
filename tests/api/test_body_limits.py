"""Body limits: one byte past the cap is 413 on REST and MCP, declared or streamed; compressed
bodies are 415; a body at the cap is served."""

import json
from collections.abc import AsyncIterator

import anyio
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from tests.api.harness import serving
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio

REST_CAP, MCP_CAP = 2048, 4096
PREVIEW = "/v1/prompts/context_stack/preview"


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings(max_body_bytes=REST_CAP, mcp_max_body_bytes=MCP_CAP))


def preview_of(size: int) -> bytes:
    """A valid preview body of exactly ``size`` bytes (the task is padded)."""
    bare = json.dumps({"task": "", "domain": "identity"}).encode()
    return json.dumps({"task": "x" * (size - len(bare)), "domain": "identity"}).encode()


def initialize_of(size: int) -> bytes:
    """An ``initialize`` request of exactly ``size`` bytes."""
    message = initialize()
    bare = json.dumps(message).encode()
    message["params"]["clientInfo"]["name"] += "x" * (size - len(bare))
    return json.dumps(message).encode()


async def streamed(body: bytes) -> AsyncIterator[bytes]:
    """``body`` in small chunks, as a client sends it without ``Content-Length``."""
    for start in range(0, len(body), 512):
        yield body[start : start + 512]


async def test_a_rest_body_one_byte_past_the_cap_is_413_and_one_at_it_is_served(
    app: FastAPI,
) -> None:
    async with serving(app) as client:
        headers = {"content-type": "application/json"}
        with anyio.fail_after(10):
            over = await client.post(PREVIEW, content=preview_of(REST_CAP + 1), headers=headers)
            at = await client.post(PREVIEW, content=preview_of(REST_CAP), headers=headers)

    assert over.status_code == 413
    assert over.json()["error"] == "payload_too_large"
    assert str(REST_CAP) in over.json()["message"]
    assert at.status_code != 413


async def test_a_streamed_body_without_content_length_is_cut_off_at_the_cap(app: FastAPI) -> None:
    async with serving(app) as client:
        with anyio.fail_after(10):
            response = await client.post(
                PREVIEW,
                content=streamed(preview_of(REST_CAP + 1)),
                headers={"content-type": "application/json"},
            )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "streamed"])
async def test_an_mcp_body_past_its_cap_is_413_with_a_json_rpc_error(
    app: FastAPI, chunked: bool
) -> None:
    body = initialize_of(MCP_CAP + 1)
    headers = {**ACCEPT, "content-type": "application/json"}
    async with serving(app) as client:
        with anyio.fail_after(10):
            over = await client.post(
                "/mcp", content=streamed(body) if chunked else body, headers=headers
            )
            at = await client.post("/mcp", content=initialize_of(MCP_CAP), headers=headers)

    assert over.status_code == 413
    assert over.json()["error"]["code"] == -32600
    assert at.status_code == 200


@pytest.mark.parametrize("path", [PREVIEW, "/mcp"])
async def test_a_compressed_body_is_415(app: FastAPI, path: str) -> None:
    async with serving(app, Scope.READ) as client:
        with anyio.fail_after(10):
            response = await client.post(
                path, content=b"\x1f\x8b\x08\x00", headers={"content-encoding": "gzip", **ACCEPT}
            )
    assert response.status_code == 415


async def test_a_request_without_a_key_is_refused_before_its_body_counts(app: FastAPI) -> None:
    async with serving(app, scope=None) as client:
        with anyio.fail_after(10):
            response = await client.post(PREVIEW, content=streamed(preview_of(10 * REST_CAP)))
    assert response.status_code == 401


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_rest_body_that_is_not_json_is_415(app: FastAPI, content_type: str) -> None:
    async with serving(app) as client:
        with anyio.fail_after(10):
            response = await client.post(
                PREVIEW, content=b"task=x", headers={"content-type": content_type}
            )
            json_suffix = await client.post(
                PREVIEW,
                content=preview_of(200),
                headers={"content-type": "application/merge-patch+json; charset=utf-8"},
            )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert json_suffix.status_code == 200


async def test_a_method_a_route_does_not_take_is_405_naming_those_it_does(app: FastAPI) -> None:
    async with serving(app) as client:
        with anyio.fail_after(10):
            response = await client.delete("/v1/prompts")
            two_routes = await client.put("/v1/keys")  # GET and POST are separate routes
    assert response.status_code == two_routes.status_code == 405
    assert response.headers["allow"] == "GET"
    assert two_routes.headers["allow"] == "GET, POST"
    assert response.json()["error"] == "method_not_allowed"
