"""Wrong secrets are throttled per source address, with 429 and ``Retry-After``, on REST and
MCP alike; behind trusted proxies the source is the forwarded client, and only then."""

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from tests.api.harness import asgi_client, issue_key, state_of
from tests.api.keys_helpers import MCP_ACCEPT, MCP_MOUNT, with_other_secret

pytestmark = pytest.mark.anyio

LIMIT = 3
PROXY = "10.1.2.3"


def throttling_app(**settings: str) -> FastAPI:
    return create_app(Settings(auth_max_failures=LIMIT, **settings))  # type: ignore[arg-type]


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    """A client of ``app`` whose connections come from ``address``."""
    transport = httpx.ASGITransport(app, client=(address, 50_000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def throttled_count(app: FastAPI) -> float:
    value = state_of(app).metrics.registry.get_sample_value(
        "ctxfy_auth_failures_total", {"reason": "throttled"}
    )
    return value or 0.0


async def test_a_throttled_source_gets_429_with_retry_after_on_rest_and_mcp() -> None:
    app = throttling_app()
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        owner = await issue_key(app, Scope.READ)
        wrong = {"X-API-Key": with_other_secret(owner)}
        with anyio.fail_after(30):
            first = [
                (await client.get("/v1/prompts", headers=wrong)).status_code for _ in range(LIMIT)
            ]
            rest = await client.get("/v1/prompts", headers=wrong)
            mcp = await client.post(MCP_MOUNT, json={}, headers={**MCP_ACCEPT, **wrong})

    assert first == [401] * LIMIT
    for response in (rest, mcp):
        assert response.status_code == 429
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.json()["error"] == "too_many_failed_attempts"
    assert throttled_count(app) == 2


async def test_the_owner_on_another_address_gets_in_while_the_attacker_is_throttled() -> None:
    app = throttling_app()
    async with (
        app.router.lifespan_context(app),
        client_from(app, "127.0.0.2") as attacker,
        client_from(app, "127.0.0.1") as owner_client,
    ):
        owner = await issue_key(app, Scope.READ)  # never used yet: no "verified before" pass
        wrong = {"X-API-Key": with_other_secret(owner)}
        with anyio.fail_after(30):
            tries = [
                (await attacker.get("/v1/prompts", headers=wrong)).status_code
                for _ in range(LIMIT + 2)
            ]
            owners = await owner_client.get("/v1/prompts", headers={"X-API-Key": owner})

    assert tries == [401] * LIMIT + [429, 429]
    assert owners.status_code == 200


@pytest.mark.parametrize(
    ("proxies", "peer", "separate"),
    [
        (PROXY, PROXY, True),  # a trusted proxy: each forwarded client has its own count
        ("10.0.0.0/8", PROXY, True),  # a trusted network
        ("", PROXY, False),  # no trusted proxy: the header is ignored, the peer is the source
        ("192.0.2.1", PROXY, False),  # a peer that is not the trusted proxy cannot spoof it
    ],
)
async def test_forwarded_clients_are_told_apart_only_behind_a_trusted_proxy(
    proxies: str, peer: str, separate: bool
) -> None:
    app = throttling_app(trusted_proxies=proxies)
    async with app.router.lifespan_context(app), client_from(app, peer) as proxy:
        owner = await issue_key(app, Scope.READ)
        wrong = {"X-API-Key": with_other_secret(owner)}
        attacker = {"X-Forwarded-For": "198.51.100.66"}
        with anyio.fail_after(30):
            for _ in range(LIMIT):
                await proxy.get("/v1/prompts", headers={**wrong, **attacker})
            owners = await proxy.get(
                "/v1/prompts", headers={"X-API-Key": owner, "X-Forwarded-For": "203.0.113.7"}
            )

    assert owners.status_code == (200 if separate else 429)


def test_a_trusted_proxy_that_is_not_an_address_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="CTXFY_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.1, proxy.internal")
