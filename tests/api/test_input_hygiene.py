"""Arguments and key names refuse control and bidi characters on every surface, the schemas
say so, unknown fields are refused, and a rendered prompt has a size cap."""

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastmcp import Client
from mcp import MCPError
from mcp.types import INVALID_PARAMS

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from domain.prompts import MAX_RENDERED_LENGTH
from tests.api.harness import serving, state_of

pytestmark = pytest.mark.anyio

PREVIEW = "/v1/prompts/context_stack/preview"
TROJAN = "Rotate the keys\u202e.exe"


async def test_a_prompt_argument_with_a_bidi_override_is_refused_on_rest_and_mcp(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    with anyio.fail_after(10):
        rest = await client.post(PREVIEW, json={"task": TROJAN, "domain": "identity"})
        async with Client(state_of(app).mcp) as mcp:
            with pytest.raises(MCPError) as refused:
                await mcp.get_prompt("context_stack", {"task": TROJAN, "domain": "identity"})

    assert rest.status_code == 422
    assert [d["field"] for d in rest.json()["details"]] == ["task"]
    assert refused.value.error.code == INVALID_PARAMS
    assert TROJAN not in rest.text


async def test_multi_line_arguments_with_tabs_are_welcome(client: httpx.AsyncClient) -> None:
    with anyio.fail_after(10):
        response = await client.post(
            PREVIEW, json={"task": "Step one\n\tStep two\r\n", "domain": "identity"}
        )
    assert response.status_code == 200


def test_the_argument_schema_states_the_rule_and_forbids_unknown_fields(app: FastAPI) -> None:
    schema = state_of(app).catalog.current.get("context_stack").argument_model.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "\\u202a" in schema["properties"]["task"]["pattern"]


@pytest.mark.parametrize("name", ["nul\x00", "two\nlines", "evil\u202etxt", "\x1b[31mred"])
async def test_a_key_name_with_control_or_bidi_characters_is_refused(
    app: FastAPI, name: str
) -> None:
    async with serving(app, Scope.ADMIN) as admin:
        with anyio.fail_after(10):
            response = await admin.post(
                "/v1/keys", json={"user_id": "ada", "scope": "read", "name": name}
            )
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "ada", "scope": "read", "admin": True}, "admin"),
        ({"user_id": "ada", "scope": "read", "expires_in_days": 366}, "expires_in_days"),
    ],
    ids=["unknown-field", "over-the-maximum-lifetime"],
)
async def test_a_key_request_outside_its_schema_is_refused_as_the_schema_says(
    app: FastAPI, body: dict[str, Any], field: str
) -> None:
    async with serving(app, Scope.ADMIN) as admin:
        with anyio.fail_after(10):
            response = await admin.post("/v1/keys", json=body)
            schema = (await admin.get("/openapi.json")).json()["components"]["schemas"]

    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == field
    create = schema["CreateKey"]
    assert create["additionalProperties"] is False
    assert create["properties"]["expires_in_days"]["anyOf"][0]["maximum"] == 365


async def test_a_prompt_that_would_render_past_the_cap_is_refused(tmp_path: Path) -> None:
    repeats = MAX_RENDERED_LENGTH // 50_000 + 1
    prompt = {
        "name": "echo",
        "title": "Echo",
        "description": "Repeats its argument.",
        "version": "1.0.0",
        "arguments": [
            {
                "name": "text",
                "description": "What to repeat.",
                "required": True,
                "max_length": 50_000,
            }
        ],
        "messages": [{"content": "{{ text }}" * repeats}],
        "example": {"text": "hi"},
    }
    (tmp_path / "echo.yaml").write_text(yaml.safe_dump(prompt), encoding="utf-8")
    app = create_app(Settings(prompts_dir=tmp_path))
    async with serving(app) as client:
        with anyio.fail_after(10):
            short = await client.post("/v1/prompts/echo/preview", json={"text": "hi"})
            long = await client.post("/v1/prompts/echo/preview", json={"text": "x" * 50_000})

    assert short.status_code == 200
    assert long.status_code == 422
    assert long.json()["error"] == "prompt_render_failed"
