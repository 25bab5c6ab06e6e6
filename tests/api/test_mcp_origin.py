"""DNS-rebinding protection on ``/mcp``: foreign Origins get 403, unknown Hosts 421."""

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.http.origin import OriginPolicy, policy_from
from app.main import create_app
from app.settings import Settings
from tests.api.harness import bearer, issue_key, serving
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio


async def post_mcp(client: httpx.AsyncClient, key: str, **headers: str) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post(
            "/mcp", json=initialize(), headers={**bearer(key), **ACCEPT, **headers}
        )


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "https://127.0.0.1.evil.example", "null", "not a url"]
)
async def test_a_foreign_origin_is_refused_with_403_and_a_json_rpc_error(
    app: FastAPI, client: httpx.AsyncClient, origin: str
) -> None:
    response = await post_mcp(client, await issue_key(app), origin=origin)

    assert response.status_code == 403
    body = response.json()
    assert (body["jsonrpc"], body["id"], body["error"]["code"]) == ("2.0", None, -32600)


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1:8000", ""])
async def test_local_pages_and_requests_without_an_origin_are_served(
    app: FastAPI, client: httpx.AsyncClient, origin: str
) -> None:
    headers = {"origin": origin} if origin else {}
    response = await post_mcp(client, await issue_key(app), **headers)
    assert response.status_code == 200


async def test_a_host_this_server_does_not_answer_to_is_421(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await post_mcp(client, await issue_key(app), host="attacker.example")
    assert response.status_code == 421


async def test_the_guard_covers_only_mcp(app: FastAPI, client: httpx.AsyncClient) -> None:
    with anyio.fail_after(10):
        response = await client.get(
            "/v1/prompts", headers={"origin": "http://evil.example", "host": "x.example"}
        )
    assert response.status_code == 200


async def test_configured_hosts_and_origins_replace_the_loopback_defaults() -> None:
    app = create_app(
        Settings(
            host="0.0.0.0",  # noqa: S104 — the bind a container uses
            allowed_hosts="ctxfy.example.com,*.internal",
            allowed_origins="https://console.example.com",
        )
    )
    async with serving(app) as client:
        key = await issue_key(app)
        named = await post_mcp(client, key, host="ctxfy.example.com")
        wildcard = await post_mcp(client, key, host="api.internal:8443")
        loopback = await post_mcp(client, key, host="127.0.0.1:8000")
        console = await post_mcp(
            client, key, host="ctxfy.example.com", origin="https://console.example.com"
        )
        other = await post_mcp(
            client, key, host="ctxfy.example.com", origin="https://ctxfy.example.com"
        )

    assert (named.status_code, wildcard.status_code, loopback.status_code) == (200, 200, 421)
    assert (console.status_code, other.status_code) == (200, 403)


def test_without_an_allowlist_a_public_bind_accepts_pages_of_its_own_host_only() -> None:
    policy = policy_from(allowed_hosts=(), allowed_origins=(), bind_host="0.0.0.0")  # noqa: S104
    assert policy.host_allowed("ctxfy.example.com")
    assert policy.origin_allowed("https://ctxfy.example.com", "ctxfy.example.com:443")
    assert not policy.origin_allowed("https://evil.example", "ctxfy.example.com")
    assert not OriginPolicy().host_allowed("ctxfy.example.com")
    assert OriginPolicy().host_allowed("[::1]:8000")
