"""Health endpoints inside and outside the application's lifespan."""

import httpx
import pytest
from fastapi import FastAPI

from tests.api.harness import asgi_client, serving

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
