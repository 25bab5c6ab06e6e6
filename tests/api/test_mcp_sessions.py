"""Stateful MCP sessions are bounded per key and per process, and end with their key."""

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.mcp.sessions import close_sessions_of_ended_keys
from app.settings import Settings
from domain.keys import Scope, parse_key
from tests.api.harness import asgi_client, issue_key, state_of
from tests.api.keys_helpers import INITIALIZE, MCP_ACCEPT, MCP_MOUNT

pytestmark = pytest.mark.anyio

PER_KEY = 2
IDLE = 120


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    app = create_app(
        Settings(
            mcp_max_sessions_per_key=PER_KEY, mcp_max_sessions=5, mcp_session_idle_seconds=IDLE
        )
    )
    async with app.router.lifespan_context(app):
        yield app


async def open_session(client: httpx.AsyncClient, key: str) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post(
            MCP_MOUNT,
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
            headers={**MCP_ACCEPT, "X-API-Key": key},
        )


def refused_sessions(app: FastAPI) -> float:
    value = state_of(app).metrics.registry.get_sample_value("ctxfy_mcp_sessions_refused_total")
    return value or 0.0


async def test_a_key_past_its_session_cap_is_refused_with_429_and_keeps_its_sessions(
    app: FastAPI,
) -> None:
    async with asgi_client(app) as client:
        key, other = await issue_key(app), await issue_key(app)
        opened = [await open_session(client, key) for _ in range(PER_KEY)]
        refused = await open_session(client, key)
        others = await open_session(client, other)
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        kept = await client.post(
            MCP_MOUNT,
            json=ping,
            headers={
                **MCP_ACCEPT,
                "X-API-Key": key,
                "mcp-session-id": opened[0].headers["mcp-session-id"],
            },
        )

    assert [r.status_code for r in opened] == [200] * PER_KEY
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(IDLE)
    assert refused.json()["error"]["code"] == -32600
    assert "mcp-session-id" not in refused.headers
    assert others.status_code == 200  # the cap is per key
    assert kept.status_code == 200
    assert state_of(app).sessions.held_by(parse_key(key).key_id) == PER_KEY
    assert refused_sessions(app) == 1


async def test_closing_a_session_makes_room_for_another(app: FastAPI) -> None:
    async with asgi_client(app) as client:
        key = await issue_key(app)
        opened = [await open_session(client, key) for _ in range(PER_KEY)]
        with anyio.fail_after(10):
            closed = await client.delete(
                MCP_MOUNT,
                headers={
                    **MCP_ACCEPT,
                    "X-API-Key": key,
                    "mcp-session-id": opened[0].headers["mcp-session-id"],
                },
            )
        again = await open_session(client, key)

    assert closed.status_code == 200
    assert again.status_code == 200


async def test_the_process_holds_at_most_its_session_cap(app: FastAPI) -> None:
    async with asgi_client(app) as client:
        keys = [await issue_key(app) for _ in range(3)]
        statuses = [(await open_session(client, key)).status_code for key in keys for _ in range(2)]

    assert statuses == [200] * 5 + [503]  # mcp_max_sessions=5, answered by the SDK
    assert state_of(app).sessions.count() == 5


async def test_revoking_a_key_here_closes_its_sessions_at_once(app: FastAPI) -> None:
    async with asgi_client(app) as client:
        key, admin = await issue_key(app), await issue_key(app, Scope.ADMIN)
        for _ in range(PER_KEY):
            await open_session(client, key)
        with anyio.fail_after(10):
            revoked = await client.post(
                f"/v1/keys/{parse_key(key).key_id}/revoke", headers={"X-API-Key": admin}
            )

    assert revoked.status_code == 200
    assert state_of(app).sessions.held_by(parse_key(key).key_id) == 0


async def test_a_key_revoked_elsewhere_loses_its_sessions_at_the_next_sweep(app: FastAPI) -> None:
    state = state_of(app)
    async with asgi_client(app) as client:
        key, kept = await issue_key(app), await issue_key(app)
        await open_session(client, key)
        await open_session(client, kept)
    # As another process (or the CLI) would: straight to the shared store.
    await state.key_store.revoke(parse_key(key).key_id, state.started_at)

    closed = await close_sessions_of_ended_keys(state.sessions, state.keys)

    assert closed == 1
    assert state.sessions.by_key() == {parse_key(kept).key_id: 1}


async def test_sessionless_mode_has_nothing_to_cap() -> None:
    app = create_app(Settings(mcp_stateless=True, mcp_max_sessions_per_key=1))
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        key = await issue_key(app)
        statuses = [(await open_session(client, key)).status_code for _ in range(3)]

    assert statuses == [200] * 3
    assert not state_of(app).sessions.stateful
