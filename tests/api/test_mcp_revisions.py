"""The protocol revisions README promises are the ones the endpoint serves, in each era."""

from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from tests.api.harness import bearer, issue_key
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[2] / "README.md"
MODERN = "2026-07-28"
INITIALIZE_ERA = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


def test_readme_lists_every_revision_served() -> None:
    text = README.read_text(encoding="utf-8")
    for revision in (MODERN, *INITIALIZE_ERA):
        assert f"`{revision}`" in text


async def test_discovery_names_the_sessionless_revision(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {
        **bearer(await issue_key(app)),
        **ACCEPT,
        "mcp-protocol-version": MODERN,
        "mcp-method": "server/discover",
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}
    with anyio.fail_after(10):
        response = await client.post("/mcp", json=body, headers=headers)

    result = response.json()["result"]
    assert result["supportedVersions"] == [MODERN]
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "ctxfy"
    assert "completions" in result["capabilities"]


@pytest.mark.parametrize("revision", INITIALIZE_ERA)
async def test_each_initialize_era_revision_is_agreed_as_asked(
    app: FastAPI, client: httpx.AsyncClient, revision: str
) -> None:
    message = initialize("revisions")
    message["params"]["protocolVersion"] = revision
    with anyio.fail_after(10):
        response = await client.post(
            "/mcp", json=message, headers={**bearer(await issue_key(app)), **ACCEPT}
        )

    assert response.status_code == 200
    assert f'"protocolVersion":"{revision}"' in response.text.replace(" ", "")
