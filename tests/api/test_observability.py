"""Request ids, the one access line per request, MCP fields and audit events."""

import io
import json

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import require_scopes

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from infrastructure.logging import configure_logging
from tests.api.harness import bearer, issue_key, mcp_over_http, serving, state_of

pytestmark = pytest.mark.anyio
ACCESS_FIELDS = {
    "timestamp",
    "level",
    "event",
    "request_id",
    "latency_ms",
    "user_id",
    "key_id",
    "method",
    "path",
    "status",
    "client",
}


class LogStream(io.StringIO):
    """Where the app's JSON log lines go; ``take`` empties it of what was written so far."""

    def take(self) -> str:
        text = self.getvalue()
        self.seek(0)
        self.truncate()
        return text


@pytest.fixture
def log_stream() -> LogStream:
    """The stream the app's JSON log lines are written to."""
    stream = LogStream()
    configure_logging(level="INFO", fmt="json", stream=stream)
    return stream


@pytest.fixture
def logged(log_stream: LogStream) -> FastAPI:
    """An app whose JSON log lines the test reads from ``log_stream``."""
    return create_app(Settings())


def log_lines(log_stream: LogStream) -> list[dict[str, object]]:
    return [json.loads(line) for line in log_stream.take().splitlines() if line]


def access_lines(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in lines if line["event"] == "request"]


async def test_a_well_formed_request_id_is_echoed_and_logged(
    logged: FastAPI, log_stream: LogStream
) -> None:
    async with serving(logged) as client:
        response = await client.get("/v1/prompts", headers={"X-Request-ID": "trace-42:a.b_c"})
    assert response.headers["x-request-id"] == "trace-42:a.b_c"
    assert response.headers["server-timing"].startswith("app;dur=")
    (line,) = access_lines(log_lines(log_stream))
    assert line["request_id"] == "trace-42:a.b_c"


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "new\nline", "semi;colon", ""])
async def test_a_malformed_request_id_is_replaced_by_a_generated_one(
    logged: FastAPI, sent: str
) -> None:
    async with serving(logged) as client:
        response = await client.get("/health/live", headers={"X-Request-ID": sent})
    generated = response.headers["x-request-id"]
    assert generated != sent
    assert len(generated) == 32
    assert int(generated, 16) >= 0


@pytest.mark.parametrize(
    ("path", "status"), [("/v1/prompts", 401), ("/v1/nothing-here", 401), ("/health", 200)]
)
async def test_every_response_carries_a_request_id_errors_included(
    logged: FastAPI, path: str, status: int
) -> None:
    async with serving(logged, scope=None) as client:
        response = await client.get(path)
    assert response.status_code == status
    assert response.headers["x-request-id"]


async def test_a_successful_preview_writes_one_access_line_with_every_field(
    logged: FastAPI, log_stream: LogStream
) -> None:
    async with serving(logged, Scope.READ) as client:
        log_stream.take()
        response = await client.post(
            "/v1/prompts/adr/preview", json={"decision_topic": "Queue choice"}
        )
    assert response.status_code == 200
    (line,) = access_lines(log_lines(log_stream))
    assert set(line) >= ACCESS_FIELDS
    assert (line["method"], line["path"], line["status"]) == (
        "POST",
        "/v1/prompts/adr/preview",
        200,
    )
    assert line["user_id"] == "tester"
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["audit"], line["auth"]) == (True, "allowed")
    assert str(line["timestamp"]).endswith("Z")


async def test_a_denied_request_is_audited_with_its_reason(
    logged: FastAPI, log_stream: LogStream
) -> None:
    async with serving(logged, scope=None) as client:
        await client.get("/v1/prompts", headers=bearer("ctxfy_not_a_key"))
    (line,) = access_lines(log_lines(log_stream))
    assert (line["status"], line["audit"], line["auth"], line["auth_reason"]) == (
        401,
        True,
        "denied",
        "malformed",
    )


@pytest.mark.parametrize(
    ("mode", "opening"), [("legacy", "initialize"), ("auto", "server/discover")]
)
async def test_mcp_requests_log_method_name_and_outcome(
    logged: FastAPI, log_stream: LogStream, mode: str, opening: str
) -> None:
    async with serving(logged) as client:
        key = await issue_key(logged)
        async with mcp_over_http(logged, key=key, mode=mode) as mcp:
            with anyio.fail_after(10):
                await mcp.get_prompt("adr", {"decision_topic": "Queue choice"})
                with pytest.raises(Exception, match="decision_topic"):
                    await mcp.get_prompt("adr", {})
        assert client is not None
    lines = [line for line in access_lines(log_lines(log_stream)) if line.get("mcp_method")]
    outcomes = {(line["mcp_method"], line.get("mcp_name"), line["mcp_outcome"]) for line in lines}
    assert (opening, None, "ok") in outcomes
    assert ("prompts/get", "adr", "ok") in outcomes
    assert ("prompts/get", "adr", "error") in outcomes
    assert all(line["key_id"] for line in lines)


async def test_a_failed_tool_call_is_logged_with_every_field_and_its_outcome(
    logged: FastAPI, log_stream: LogStream
) -> None:
    def explode() -> str:
        raise ToolError("the tool failed")

    state_of(logged).mcp.tool(explode, name="explode", auth=require_scopes("read"))
    async with serving(logged):
        key = await issue_key(logged)
        async with mcp_over_http(logged, key=key) as mcp:
            with anyio.fail_after(10):
                result = await mcp.call_tool("explode", {}, raise_on_error=False)
    assert result.is_error
    (line,) = [
        line
        for line in access_lines(log_lines(log_stream))
        if line.get("mcp_method") == "tools/call"
    ]
    assert set(line) >= ACCESS_FIELDS
    assert (line["mcp_name"], line["mcp_outcome"], line["mcp_error"]) == (
        "explode",
        "error",
        "ToolError",
    )


async def test_key_lifecycle_events_are_audited_with_the_acting_key(
    logged: FastAPI, log_stream: LogStream
) -> None:
    async with serving(logged, Scope.ADMIN) as admin:
        created = (await admin.post("/v1/keys", json={"user_id": "bob", "scope": "read"})).json()
        await admin.post(f"/v1/keys/{created['key_id']}/rotate", json={"grace_seconds": 60})
        await admin.post(f"/v1/keys/{created['key_id']}/revoke")
        actor = state_of(logged).authenticator.drain_usage().popitem()[0]
    events = {
        str(line["event"]): line for line in log_lines(log_stream) if line.get("audit") is True
    }
    for event in ("key_created", "key_rotated", "key_revoked"):
        assert events[event]["actor"] == actor, event
    assert events["key_rotated"]["key_id"] == created["key_id"]
    assert created["key"] not in json.dumps(events)


async def test_a_request_outside_the_lifespan_still_gets_its_access_line(
    log_stream: LogStream,
) -> None:
    app = create_app(Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        response = await c.get("/health/live")
    assert response.status_code == 200
    (line,) = access_lines(log_lines(log_stream))
    assert line["status"] == 200
