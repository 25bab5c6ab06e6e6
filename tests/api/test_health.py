"""Health endpoints inside and outside the application's lifespan."""

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.services.health import CHECKS_MAX_AGE
from app.settings import Settings
from domain.ports import KeyStore
from infrastructure.keystore.sql import SqlKeyStore
from tests.api.harness import asgi_client, serving, state_of
from tests.fakes import SwitchableKeyStore

pytestmark = pytest.mark.anyio

CHECKS = {"lifecycle", "catalog", "mcp_transport", "key_store"}


def check_statuses(body: dict[str, object]) -> dict[str, str]:
    checks = body["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check["status"] for check in checks}


async def test_liveness_answers_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_liveness_answers_even_before_the_lifespan_starts(
    idle_client: httpx.AsyncClient,
) -> None:
    response = await idle_client.get("/health/live")

    assert response.status_code == 200


@pytest.mark.parametrize(("path", "status"), [("/health/ready", "ready"), ("/health", "healthy")])
async def test_every_check_passes_while_the_lifespan_runs(
    client: httpx.AsyncClient, path: str, status: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == status
    assert check_statuses(body) == dict.fromkeys(CHECKS, "ok")


async def test_detailed_health_reports_version_uptime_and_timestamp(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = (await client.get("/health")).json()

    assert body["version"] == app.state.ctxfy.version
    assert body["uptime_seconds"] >= 0
    assert body["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    ("path", "status"), [("/health/ready", "not_ready"), ("/health", "unhealthy")]
)
async def test_outside_the_lifespan_health_fails_naming_the_failing_checks(
    idle_client: httpx.AsyncClient, path: str, status: str
) -> None:
    response = await idle_client.get(path)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == status
    assert check_statuses(body) == {
        "lifecycle": "fail",
        "catalog": "ok",
        "mcp_transport": "fail",
        "key_store": "fail",
    }


async def test_readiness_fails_again_once_the_lifespan_has_ended(app: FastAPI) -> None:
    async with serving(app) as client:
        assert (await client.get("/health/ready")).status_code == 200

    async with asgi_client(app) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503
    assert check_statuses(response.json())["lifecycle"] == "fail"


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingKeyStore(SwitchableKeyStore):
    """The app's real key store, counting pings; a closed gate holds every ping."""

    def __init__(self, inner: KeyStore) -> None:
        super().__init__(inner)
        self.pings = 0
        self.gate: anyio.Event | None = None

    async def ping(self) -> None:
        self.pings += 1
        if self.gate is not None:
            await self.gate.wait()
        await super().ping()


@pytest.fixture
def clock() -> ManualClock:
    """Drives the age of the app's shared health checks."""
    return ManualClock()


@pytest.fixture
def store() -> CountingKeyStore:
    """The app's real key store, wrapped (the app's lifespan starts it)."""
    return CountingKeyStore(SqlKeyStore(Settings().database_url.get_secret_value()))


@pytest.fixture
def app(clock: ManualClock, store: CountingKeyStore) -> FastAPI:
    """Overrides the conftest app: its clock and key store are the test's."""
    return create_app(Settings(), clock=clock, key_store=store)


async def test_readiness_follows_the_key_store_after_the_cache_window_without_a_restart(
    app: FastAPI, clock: ManualClock, store: CountingKeyStore
) -> None:
    async with serving(app, scope=None) as client:
        assert (await client.get("/health/ready")).status_code == 200

        store.down = True
        within_window = await client.get("/health/ready")
        clock.advance(CHECKS_MAX_AGE)
        down = await client.get("/health/ready")
        live = await client.get("/health/live")

        store.down = False
        clock.advance(CHECKS_MAX_AGE)
        back = await client.get("/health/ready")

    assert within_window.status_code == 200
    assert down.status_code == 503
    assert down.json()["status"] == "not_ready"
    assert check_statuses(down.json())["key_store"] == "fail"
    assert live.status_code == 200
    assert back.status_code == 200
    assert check_statuses(back.json()) == dict.fromkeys(CHECKS, "ok")


async def test_detailed_health_is_unhealthy_while_the_key_store_is_away(
    app: FastAPI, clock: ManualClock, store: CountingKeyStore
) -> None:
    async with serving(app, scope=None) as client:
        store.down = True
        response = await client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert check_statuses(response.json())["key_store"] == "fail"


async def test_probes_within_the_cache_window_ping_the_key_store_once(
    app: FastAPI, clock: ManualClock, store: CountingKeyStore
) -> None:
    async with serving(app, scope=None) as client:
        for path in ("/health/ready", "/health", "/health/ready", "/health"):
            assert (await client.get(path)).status_code == 200
            clock.advance(CHECKS_MAX_AGE / 5)
        pings_within_window = store.pings
        clock.advance(CHECKS_MAX_AGE)
        await client.get("/health/ready")

    assert pings_within_window == 1
    assert store.pings == 2


async def test_concurrent_probes_share_one_key_store_ping_while_it_runs(
    app: FastAPI, clock: ManualClock, store: CountingKeyStore
) -> None:
    probes = 25
    statuses: list[int] = []
    async with serving(app, scope=None) as client:

        async def probe() -> None:
            statuses.append((await client.get("/health/ready")).status_code)

        store.gate = gate = anyio.Event()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for _ in range(probes):
                    tasks.start_soon(probe)
                # Every probe is now parked: one on the held ping, the rest on its result.
                await anyio.wait_all_tasks_blocked()
                pings_while_held = store.pings
                gate.set()

    assert pings_while_held == 1
    assert store.pings == 1
    assert statuses == [200] * probes


async def test_liveness_never_touches_the_key_store(
    app: FastAPI, clock: ManualClock, store: CountingKeyStore
) -> None:
    async with serving(app, scope=None) as client:
        store.down = True
        responses = [await client.get("/health/live") for _ in range(3)]

    assert [r.status_code for r in responses] == [200] * 3
    assert store.pings == 0


async def test_draining_fails_readiness_at_once_while_liveness_and_requests_carry_on(
    app: FastAPI, clock: ManualClock
) -> None:
    async with serving(app) as client:
        assert (await client.get("/health/ready")).status_code == 200

        state_of(app).lifecycle.start_draining()
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
        health = await client.get("/health")
        prompts = await client.get("/v1/prompts")

    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert check_statuses(ready.json()) == {**dict.fromkeys(CHECKS, "ok"), "lifecycle": "fail"}
    assert live.status_code == 200
    assert prompts.status_code == 200
    # Draining is no fault: the detailed status is degraded, and still answers 200.
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"


async def test_readiness_is_taken_afresh_as_soon_as_the_lifespan_starts(
    app: FastAPI, clock: ManualClock
) -> None:
    async with asgi_client(app) as client:
        assert (await client.get("/health/ready")).status_code == 503

    async with serving(app, scope=None) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
