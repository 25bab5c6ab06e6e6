"""Two ``ctxfy serve`` replicas in stateless mode on one real PostgreSQL and one real
``redis-server``, behind a client that alternates between them: they act as one service.

Keys live in PostgreSQL, so a key made or revoked through one replica is known to the other
(revocation within ``CTXFY_AUTH_CACHE_TTL_SECONDS``, the other replica's cache); per-key rate
limits count in Redis, so a limit holds across both; the catalog is the same in each, so
MCP ``prompts/get`` and REST preview answer alike from either.
"""

import secrets
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from infrastructure.catalog.loader import load_catalog
from tests.e2e.server import RunningServer, running_server
from tests.integration.keystore.postgres import fresh_database, temporary_cluster
from tests.redis_server import RedisServer, running_redis

TTL_SECONDS = 1.0
# Beyond the TTL: the poll's own request and the store's answer, on a busy 2-core machine.
MARGIN_SECONDS = 0.5
LIMIT = 10
TIMEOUT = 10.0
PROMPT = "context_stack"
EXAMPLE = load_catalog().get(PROMPT).definition.example_arguments

Replicas = tuple[RunningServer, RunningServer]


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh database in a real PostgreSQL cluster, for both replicas' keys."""
    with temporary_cluster() as cluster, fresh_database(cluster) as url:
        yield url


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` where both replicas count rate limits."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis: RedisServer
) -> Iterator[Replicas]:
    """Replicas A and B, configured alike; A's admin key (made by the CLI) serves both."""
    env = {
        "CTXFY_MCP_STATELESS": "true",
        "CTXFY_DATABASE_URL": database_url,
        "CTXFY_REDIS_URL": redis.url,
        "CTXFY_AUTH_CACHE_TTL_SECONDS": str(TTL_SECONDS),
        # A day-long window: the test cannot run across its end, so the count is exact.
        "CTXFY_RATE_LIMIT_READ": f"{LIMIT}/day",
        # As a deployment shares them: any replica may unseal another's round-trip state.
        "CTXFY_MCP_STATE_KEYS": secrets.token_urlsafe(32),
        "CTXFY_DRAIN_SECONDS": "0",
    }
    unused = tmp_path_factory.mktemp("replicas")  # no SQLite file: the keys are in PostgreSQL
    with (
        running_server(unused, env, scope="admin") as first,
        running_server(unused, env, key=first.key) as second,
    ):
        yield first, second


def client(server: RunningServer, key: str) -> httpx.Client:
    """A REST client of one replica presenting ``key``."""
    return httpx.Client(
        base_url=server.base_url, timeout=TIMEOUT, headers={"Authorization": f"Bearer {key}"}
    )


def create_key(through: RunningServer, scope: str = "read") -> dict[str, Any]:
    """A new key made through one replica's admin API, as an operator would."""
    with client(through, through.key) as admin:
        response = admin.post("/v1/keys", json={"user_id": "replica-e2e", "scope": scope})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def wire_arguments(values: dict[str, Any]) -> dict[str, str]:
    """Prompt arguments as MCP sends them: every value a string."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def test_a_key_created_through_one_replica_is_accepted_by_the_other(replicas: Replicas) -> None:
    first, second = replicas
    created = create_key(through=first)

    with client(second, created["key"]) as other:
        listed = other.get("/v1/prompts")
        described = other.get(f"/v1/keys/{created['key_id']}")

    assert listed.status_code == 200
    assert PROMPT in listed.text
    assert described.status_code == 403  # known and authenticated, but a read key is no admin


def test_a_key_revoked_through_one_replica_is_refused_by_the_other_within_the_cache_ttl(
    replicas: Replicas, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = replicas
    created = create_key(through=first)
    with (
        client(first, first.key) as admin,
        client(first, created["key"]) as on_first,
        client(second, created["key"]) as on_second,
    ):
        assert on_second.get("/v1/prompts").status_code == 200  # B now holds it in its cache

        revoked_at = time.monotonic()
        revoked = admin.post(f"/v1/keys/{created['key_id']}/revoke")
        refused_by_first = on_first.get("/v1/prompts")
        # Still accepted by B until its cache entry ends: served, or over the key's limit
        # (a limit is counted only for an authenticated key).
        accepted: list[int] = []
        deadline = revoked_at + TTL_SECONDS + MARGIN_SECONDS
        while (answer := on_second.get("/v1/prompts")).status_code in (200, 429):
            accepted.append(answer.status_code)
            if time.monotonic() > deadline:
                break
        seen_after = time.monotonic() - revoked_at

    with capsys.disabled():  # the figure shows in CI's output, passing or not
        print(  # noqa: T201 — the test reports its figure
            f"\nreplicas: revocation through A refused by B after {seen_after:.2f} s "
            f"(TTL {TTL_SECONDS:g} s, {len(accepted)} requests accepted by B meanwhile)"
        )
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert refused_by_first.status_code == 401  # A forgets a key it revokes at once
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert seen_after <= TTL_SECONDS + MARGIN_SECONDS


def test_one_rate_limit_per_key_holds_across_both_replicas(replicas: Replicas) -> None:
    first, second = replicas
    created = create_key(through=first)
    with client(first, created["key"]) as on_first, client(second, created["key"]) as on_second:
        answers = [
            ((on_first, on_second)[turn % 2].get("/v1/prompts"), "AB"[turn % 2])
            for turn in range(LIMIT + 2)
        ]

    served = [replica for response, replica in answers if response.status_code == 200]
    refused = [(response, replica) for response, replica in answers if response.status_code != 200]
    assert len(served) == LIMIT
    assert (served.count("A"), served.count("B")) == (LIMIT // 2, LIMIT // 2)
    assert [r.headers["ratelimit-remaining"] for r, _ in answers[:LIMIT]] == [
        str(LIMIT - 1 - n) for n in range(LIMIT)
    ]
    # The 11th and 12th: refused by A and by B alike, each saying when to come back.
    assert [(r.status_code, replica) for r, replica in refused] == [(429, "A"), (429, "B")]
    assert all(r.json()["error"] == "rate_limited" for r, _ in refused)
    assert all(int(r.headers["retry-after"]) >= 1 for r, _ in refused)


@pytest.mark.anyio
async def test_prompts_get_and_preview_answer_identically_from_either_replica(
    replicas: Replicas,
) -> None:
    mcp_key = create_key(through=replicas[0])["key"]
    rest_key = create_key(through=replicas[0])["key"]
    rendered: list[dict[str, Any]] = []
    previews: list[httpx.Response] = []
    with anyio.fail_after(TIMEOUT * 2):
        for server in replicas:
            async with Client(StreamableHttpTransport(server.mcp_url, auth=mcp_key)) as mcp:
                result = await mcp.get_prompt(PROMPT, wire_arguments(EXAMPLE))
            rendered.append(result.model_dump(mode="json"))
            async with httpx.AsyncClient(
                base_url=server.base_url,
                timeout=TIMEOUT,
                headers={"Authorization": f"Bearer {rest_key}"},
            ) as rest:
                previews.append(await rest.post(f"/v1/prompts/{PROMPT}/preview", json=EXAMPLE))

    expected = load_catalog().get(PROMPT).render(EXAMPLE).messages[0].text
    assert rendered[0]["messages"][0]["content"]["text"] == expected
    assert rendered[0] == rendered[1]
    assert [p.status_code for p in previews] == [200, 200]
    assert previews[0].json()["messages"][0]["content"]["text"] == expected
    assert previews[0].json() == previews[1].json()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
