"""Malformed MCP input is the client's error in both eras: 400, a fixed JSON-RPC error that
echoes nothing it was sent, no error log, and the server goes on answering."""

import io
import json

import anyio
import httpx
import pytest
from fastapi import FastAPI

from infrastructure.logging import configure_logging
from tests.api.harness import bearer, issue_key
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio

SECRET_LOOKING = "canary-7f3a"  # if any answer quotes the input, this shows up in it
CASES: dict[str, tuple[bytes, int]] = {
    "deep-nesting": (
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":'
        + b"[" * 10_000
        + b"]" * 10_000
        + b"}}",
        -32700,
    ),
    "huge-id": (b'{"jsonrpc":"2.0","id":' + b"9" * 5_000 + b',"method":"ping"}', -32700),
    "invalid-utf8": (
        b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe' + SECRET_LOOKING.encode() + b'"}',
        -32700,
    ),
    "truncated": (b'{"jsonrpc":"2.0","id":1,"method":"pi', -32700),
    "batch": (json.dumps([{"jsonrpc": "2.0", "id": 1, "method": SECRET_LOOKING}]).encode(), -32600),
    "not-an-object": (b"42", -32600),
    "wrong-version": (
        json.dumps({"jsonrpc": "1.0", "id": 1, "method": SECRET_LOOKING}).encode(),
        -32600,
    ),
    "method-not-a-string": (
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": [SECRET_LOOKING]}).encode(),
        -32600,
    ),
    "id-an-object": (
        json.dumps({"jsonrpc": "2.0", "id": {"x": SECRET_LOOKING}, "method": "ping"}).encode(),
        -32600,
    ),
    "id-too-long": (
        json.dumps({"jsonrpc": "2.0", "id": "x" * 300, "method": "ping"}).encode(),
        -32600,
    ),
    "params-a-string": (
        json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": SECRET_LOOKING}
        ).encode(),
        -32600,
    ),
    "no-method": (
        json.dumps({"jsonrpc": "2.0", "id": 1, "params": {"x": SECRET_LOOKING}}).encode(),
        -32600,
    ),
}
ERAS = {
    "legacy": {},
    "2026-07-28": {"mcp-protocol-version": "2026-07-28", "mcp-method": "ping"},
}


@pytest.mark.parametrize("era", list(ERAS))
@pytest.mark.parametrize("case", list(CASES))
async def test_malformed_input_is_a_400_json_rpc_error_that_echoes_nothing(
    app: FastAPI, client: httpx.AsyncClient, case: str, era: str
) -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    body, code = CASES[case]
    headers = {**bearer(await issue_key(app)), **ACCEPT, "content-type": "application/json"}
    with anyio.fail_after(10):
        response = await client.post("/mcp", content=body, headers={**headers, **ERAS[era]})
        alive = await client.post("/mcp", json=initialize(), headers=headers)

    assert response.status_code == 400
    answer = response.json()
    assert (answer["id"], answer["error"]["code"]) == (None, code)
    assert SECRET_LOOKING not in response.text
    levels = {json.loads(line)["level"] for line in stream.getvalue().splitlines() if line}
    assert "error" not in levels
    assert alive.status_code == 200
