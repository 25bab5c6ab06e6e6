"""``POST /v1/catalog/reload``: who may reload, what a reload answers, and REST routes and
OpenAPI operations following the catalog it swapped in (or, refused, the old one staying)."""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog
from fastapi import FastAPI
from starlette.routing import Mount

from app.main import MCP_PATH
from domain.keys import Scope
from infrastructure.process.reload_signals import SUPERVISOR_PID_ENV
from tests.api.catalog_files import (
    CURRENT,
    body_for,
    remove_prompt_files,
    rendered,
    version_document,
    versioned_app,
    versioned_prompts,
    write_version,
)
from tests.api.harness import catalog_of, serving, state_of
from tests.api.keys_helpers import UNTHROTTLED, insufficient_scope
from tests.fakes import HeldLlm
from tests.integration.prompt_files import write_prompt

pytestmark = pytest.mark.anyio

RELOAD = "/v1/catalog/reload"


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    return versioned_prompts(tmp_path / "prompts")


@pytest.fixture
def app(prompts_dir: Path) -> FastAPI:
    return versioned_app(prompts_dir, settings=UNTHROTTLED)


@pytest.fixture
async def admin(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, Scope.ADMIN) as client:
        yield client


async def reload(client: httpx.AsyncClient) -> httpx.Response:
    with anyio.fail_after(20):
        return await client.post(RELOAD)


async def openapi_paths(client: httpx.AsyncClient) -> dict[str, Any]:
    paths: dict[str, Any] = (await client.get("/openapi.json")).json()["paths"]
    return paths


@pytest.mark.parametrize("scope", [Scope.READ, Scope.WRITE])
async def test_only_an_admin_key_may_reload_the_catalog(app: FastAPI, scope: Scope) -> None:
    async with serving(app, scope) as client:
        refused = await reload(client)
        described = await client.get("/v1/catalog")

    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == insufficient_scope(Scope.ADMIN)
    assert refused.json()["error"] == "insufficient_scope"
    assert described.status_code == 200
    assert described.json()["last_reload"] is None, "a refused request reloaded nothing"


async def test_reloading_without_a_key_is_a_401(app: FastAPI) -> None:
    async with serving(app, scope=None) as client:
        response = await reload(client)

    assert response.status_code == 401


async def test_a_reload_that_finds_nothing_new_answers_unchanged_and_keeps_every_tag(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    before = catalog_of(app)
    tag = (await admin.get("/v1/prompts")).headers["etag"]

    response = await reload(admin)

    assert response.status_code == 200
    report = response.json()
    assert report["trigger"] == "api"
    assert report["outcome"] == "unchanged"
    assert report["digest"] == before.digest
    assert (report["prompts"], report["versions"]) == (len(before), before.version_count)
    assert (report["added"], report["removed"], report["current_changed"]) == ([], [], [])
    assert report["error"] is None
    assert catalog_of(app) is before
    assert (await admin.get("/v1/prompts")).headers["etag"] == tag


async def test_a_new_version_file_is_served_after_a_reload_with_its_own_operation(
    app: FastAPI, admin: httpx.AsyncClient, prompts_dir: Path
) -> None:
    tag = (await admin.get("/v1/prompts")).headers["etag"]
    write_version(prompts_dir, "1.2.0")

    response = await reload(admin)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["outcome"] == "changed"
    assert (report["added"], report["removed"]) == (["greet@1.2.0"], [])
    assert report["current_changed"] == ["greet"]
    assert report["digest"] == catalog_of(app).digest
    unpinned = await admin.post("/v1/prompts/greet/preview", json=body_for("1.2.0"))
    old = await admin.post("/v1/prompts/greet/preview?version=1.1.0", json=body_for("1.1.0"))
    assert unpinned.json()["messages"][0]["content"]["text"] == rendered("1.2.0")
    assert old.json()["messages"][0]["content"]["text"] == rendered(CURRENT)
    paths = await openapi_paths(admin)
    assert paths["/v1/prompts/greet/preview"]["post"]["operationId"] == "preview_greet"
    body = paths["/v1/prompts/greet/preview"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/GreetArguments"}
    assert paths["/v1/prompts/greet@1.1.0/preview"]["post"]["operationId"] == "preview_greet_v1_1_0"
    assert "/v1/prompts/greet@1.2.0/preview" not in paths, "the current version is unpinned"
    listed = await admin.get("/v1/prompts")
    assert listed.headers["etag"] != tag
    (greet,) = [p for p in listed.json()["prompts"] if p["name"] == "greet"]
    assert (greet["version"], greet["versions"]) == ("1.2.0", ["2.0.0", "1.2.0", "1.1.0", "1.0.0"])


async def test_a_removed_prompt_is_gone_from_every_route_after_a_reload(
    admin: httpx.AsyncClient, prompts_dir: Path
) -> None:
    remove_prompt_files(prompts_dir)

    report = (await reload(admin)).json()

    assert report["removed"] == ["greet@1.0.0", "greet@1.1.0", "greet@2.0.0"]
    for method, url, body in [
        ("GET", "/v1/prompts/greet", None),
        ("GET", "/v1/prompts/greet/versions", None),
        ("POST", "/v1/prompts/greet/preview", body_for(CURRENT)),
        ("POST", "/v1/prompts/greet@1.0.0/preview", body_for("1.0.0")),
        ("POST", "/v1/prompts/greet/preview?version=1.0.0", body_for("1.0.0")),
    ]:
        response = await admin.request(method, url, json=body)
        assert response.status_code == 404, url
        assert response.json()["error"] == "prompt_not_found", url
    assert not [path for path in await openapi_paths(admin) if "greet" in path]
    listed = (await admin.get("/v1/prompts")).json()["prompts"]
    assert "greet" not in [p["name"] for p in listed]


async def test_after_a_reload_requests_are_labelled_by_the_routes_serving_them(
    app: FastAPI, admin: httpx.AsyncClient, prompts_dir: Path
) -> None:
    # The metrics remember each path's route label; a reload must make them look again.
    def counted(handler: str, status: str) -> float | None:
        labels = {"handler": handler, "method": "POST", "status": status}
        return state_of(app).metrics.registry.get_sample_value("http_requests_total", labels)

    own_route = "/v1/prompts/greet/preview"
    assert (await admin.post(own_route, json=body_for(CURRENT))).status_code == 200
    remove_prompt_files(prompts_dir)
    assert (await reload(admin)).json()["outcome"] == "changed"

    assert (await admin.post(own_route, json=body_for(CURRENT))).status_code == 404

    assert counted(own_route, "2xx") == 1
    assert counted(own_route, "4xx") is None


async def test_a_broken_file_is_refused_naming_it_and_the_old_catalog_keeps_serving(
    app: FastAPI, admin: httpx.AsyncClient, prompts_dir: Path
) -> None:
    serving_before = catalog_of(app)
    paths_before = await openapi_paths(admin)
    tag = (await admin.get("/v1/prompts")).headers["etag"]
    broken = version_document("1.2.0") | {"arguments": [{"name": "guest", "type": "colour"}]}
    broken_file = write_prompt(prompts_dir, broken, "greet-1.2.0.yaml")

    response = await reload(admin)

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "catalog_reload_failed"
    assert "previous one keeps serving" in body["message"]
    assert str(broken_file) in body["message"]
    assert "'greet'" in body["message"]
    assert "arguments" in body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert catalog_of(app) is serving_before
    assert await openapi_paths(admin) == paths_before
    preview = await admin.post("/v1/prompts/greet/preview", json=body_for(CURRENT))
    assert preview.json()["version"] == CURRENT
    assert (await admin.get("/v1/prompts")).headers["etag"] == tag
    described = (await admin.get("/v1/catalog")).json()
    assert described["last_reload"]["outcome"] == "failed"
    assert described["last_failure"]["error"] in body["message"]
    assert described["digest"] == serving_before.digest


async def test_a_fixed_file_reloads_after_a_refused_one(
    app: FastAPI, admin: httpx.AsyncClient, prompts_dir: Path
) -> None:
    (prompts_dir / "greet-1.2.0.yaml").write_text("name: [unclosed", encoding="utf-8")
    refused = await reload(admin)
    write_version(prompts_dir, "1.2.0")

    accepted = await reload(admin)

    assert refused.status_code == 409
    assert accepted.status_code == 200
    assert accepted.json()["added"] == ["greet@1.2.0"]
    preview = await admin.post("/v1/prompts/greet/preview", json=body_for("1.2.0"))
    assert preview.json()["version"] == "1.2.0"


async def test_the_catalog_describes_what_is_serving_and_the_last_reload(
    app: FastAPI, admin: httpx.AsyncClient, prompts_dir: Path
) -> None:
    fresh = (await admin.get("/v1/catalog")).json()
    write_version(prompts_dir, "1.2.0")
    report = (await reload(admin)).json()

    described = (await admin.get("/v1/catalog")).json()

    assert (fresh["last_reload"], fresh["last_failure"]) == (None, None)
    assert described == {
        "digest": catalog_of(app).digest,
        "prompts": len(catalog_of(app)),
        "versions": catalog_of(app).version_count,
        "last_reload": report,
        "last_failure": None,
    }
    assert described["versions"] == fresh["versions"] + 1


async def test_a_generation_running_during_a_reload_finishes_with_the_version_it_started(
    tmp_path: Path,
) -> None:
    directory = versioned_prompts(tmp_path / "prompts")
    llm = HeldLlm()
    app = versioned_app(directory, llm)
    async with serving(app, Scope.ADMIN) as client, anyio.create_task_group() as tasks:
        answers: list[httpx.Response] = []

        async def generate() -> None:
            answers.append(await client.post("/v1/prompts/greet/generate", json=body_for(CURRENT)))

        with anyio.fail_after(20):
            tasks.start_soon(generate)
            await llm.until(lambda: llm.held == 1)
            write_version(directory, "1.2.0")
            reloaded = await reload(client)
            llm.release()
            await llm.until(lambda: llm.answered == 1)
            fresh = await client.post("/v1/prompts/greet/generate", json=body_for("1.2.0"))

    assert reloaded.json()["current_changed"] == ["greet"]
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == CURRENT
    assert fresh.json()["version"] == "1.2.0"


async def test_repeated_reloads_change_nothing_and_break_nothing(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    routes = len(app.router.routes)
    paths = await openapi_paths(admin)

    outcomes = [(await reload(admin)).json()["outcome"] for _ in range(5)]

    assert outcomes == ["unchanged"] * 5
    assert len(app.router.routes) == routes
    assert await openapi_paths(admin) == paths
    preview = await admin.post("/v1/prompts/greet/preview", json=body_for(CURRENT))
    assert preview.status_code == 200


async def test_repeated_changing_reloads_keep_one_set_of_prompt_routes(
    app: FastAPI, admin: httpx.AsyncClient, prompts_dir: Path
) -> None:
    routes = len(app.router.routes)
    # Matched before every REST route (an MCP request paid an eighth of its time matching
    # them first), and still after each replacement of the prompt routes.
    (mcp,) = [r for r in app.router.routes if isinstance(r, Mount) and r.path == MCP_PATH]
    assert app.router.routes[0] is mcp

    for version in ("1.2.0", "1.0.0", "1.2.0"):
        path = prompts_dir / f"greet-{version}.yaml"
        if path.exists():
            path.unlink()
        else:
            write_version(prompts_dir, version)
        assert (await reload(admin)).json()["outcome"] == "changed"

    assert len(app.router.routes) == routes
    assert app.router.routes[0] is mcp
    operations = [
        op["operationId"]
        for item in (await openapi_paths(admin)).values()
        for op in item.values()
        if "greet" in op["operationId"]
    ]
    # Back to 1.1.0 (current, unpinned) and 2.0.0; 1.0.0 and 1.2.0 are gone.
    assert sorted(operations) == [
        "generate_greet",
        "generate_greet_v2_0_0",
        "preview_greet",
        "preview_greet_v2_0_0",
    ]


async def test_a_successful_reload_asks_the_other_workers_to_reload_and_a_failed_one_does_not(
    monkeypatch: pytest.MonkeyPatch, prompts_dir: Path
) -> None:
    # A supervisor that is not this process's parent: asking it is logged, not signalled.
    monkeypatch.setenv(SUPERVISOR_PID_ENV, str(os.getpid()))
    app = versioned_app(prompts_dir)
    async with serving(app, Scope.ADMIN) as client:
        with structlog.testing.capture_logs() as succeeded:
            assert (await reload(client)).status_code == 200
        (prompts_dir / "greet-1.2.0.yaml").write_text("name: [unclosed", encoding="utf-8")
        with structlog.testing.capture_logs() as failed:
            assert (await reload(client)).status_code == 409

    assert "reload_siblings_skipped" in [e["event"] for e in succeeded]
    assert "reload_siblings_skipped" not in [e["event"] for e in failed]
