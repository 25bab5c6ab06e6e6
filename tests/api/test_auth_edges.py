"""The edges of authentication: public paths, headers, discovery, identical refusals, argon2."""

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.http.auth import is_public
from domain.keys import Scope, parse_key
from tests.api.harness import bearer, issue_key, serving, state_of
from tests.api.keys_helpers import (
    INITIALIZE,
    INVALID_TOKEN,
    MCP_ACCEPT,
    MCP_MOUNT,
    REALM,
    REFUSED_KINDS,
    insufficient_scope,
    outcome,
    refused_key,
)
from tests.fakes import verifications

pytestmark = pytest.mark.anyio

PUBLIC = ("/health", "/health/live", "/health/ready", "/docs", "/redoc", "/openapi.json")


@pytest.mark.parametrize("path", [*PUBLIC, "/metrics"])
async def test_public_paths_answer_without_a_key_even_beside_a_bad_one(
    app: FastAPI, path: str
) -> None:
    exists = any(route.path == path for route in iter_route_contexts(app.routes))
    async with serving(app, scope=None) as client:
        with anyio.fail_after(10):
            anonymous = await client.get(path)
            with_bad_key = await client.get(path, headers={"Authorization": "Bearer not-a-key"})

    assert is_public(path)
    assert anonymous.status_code == with_bad_key.status_code == (200 if exists else 404)


@pytest.mark.parametrize("path", ["/", "/v1/prompts", "/v1/keys", "/mcp", "/mcp/", "/docs/x"])
def test_nothing_else_is_public(path: str) -> None:
    assert not is_public(path)


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
    ],
)
async def test_no_oauth_discovery_metadata_is_offered(app: FastAPI, path: str) -> None:
    async with serving(app, scope=None) as client:
        admin_key = await issue_key(app, Scope.ADMIN)
        with anyio.fail_after(10):
            statuses = [
                (await client.get(path, headers=headers)).status_code
                for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"X-API-Key": admin_key})
            ]

    assert statuses == [404, 404, 404]


@pytest.mark.parametrize("parameter", ["api_key", "key", "access_token", "token", "x-api-key"])
async def test_a_key_in_the_query_string_is_ignored(app: FastAPI, parameter: str) -> None:
    async with serving(app, scope=None) as client:
        admin_key = await issue_key(app, Scope.ADMIN)
        with anyio.fail_after(10):
            rest = await client.get("/v1/prompts", params={parameter: admin_key})
            mcp = await client.post(
                MCP_MOUNT,
                params={parameter: admin_key},
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
                headers=MCP_ACCEPT,
            )

    assert outcome(rest) == outcome(mcp) == f"401 {REALM}"


async def test_the_x_api_key_header_authenticates_like_bearer(app: FastAPI) -> None:
    async with serving(app, scope=None) as client:
        read_key = await issue_key(app, Scope.READ)
        with anyio.fail_after(10):
            listed = await client.get("/v1/prompts", headers={"X-API-Key": read_key})
            keys = await client.get("/v1/keys", headers={"X-API-Key": read_key})
            initialized = await client.post(
                MCP_MOUNT,
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
                headers={**MCP_ACCEPT, "X-API-Key": read_key},
            )

    assert listed.status_code == 200
    assert outcome(keys) == f"403 {insufficient_scope(Scope.ADMIN)}"
    assert initialized.status_code == 200


async def test_every_refused_key_gets_one_identical_401_on_rest_and_mcp(app: FastAPI) -> None:
    answers: dict[str, tuple[int, str | None, bytes]] = {}
    request_ids: set[str] = set()
    async with serving(app, scope=None) as client:
        for kind in REFUSED_KINDS:
            key = await refused_key(app, kind)
            for header in ("Authorization", "X-API-Key"):
                value = f"Bearer {key}" if header == "Authorization" else key
                with anyio.fail_after(10):
                    rest = await client.get("/v1/prompts", headers={header: value})
                    mcp = await client.post(
                        MCP_MOUNT, json={}, headers={**MCP_ACCEPT, header: value}
                    )
                for surface, response in (("rest", rest), ("mcp", mcp)):
                    # Only the request id differs: it names this request, not the key.
                    request_id = response.json()["request_id"]
                    assert request_id == response.headers["x-request-id"]
                    request_ids.add(request_id)
                    answers[f"{kind} {header} {surface}"] = (
                        response.status_code,
                        response.headers.get("www-authenticate"),
                        response.content.replace(request_id.encode(), b"<request id>"),
                    )

    assert len(set(answers.values())) == 1, answers
    assert len(request_ids) == len(answers)
    status, challenge, body = next(iter(answers.values()))
    assert (status, challenge) == (401, INVALID_TOKEN)
    assert httpx.Response(401, content=body).json() == {
        "error": "unauthorized",
        "message": "A valid API key is required (Authorization: Bearer or X-API-Key).",
        "details": [],
        "request_id": "<request id>",
    }


@pytest.mark.parametrize("kind", ["malformed", "bad_checksum", "revoked", "expired"])
async def test_a_key_refused_before_verification_costs_no_argon2(app: FastAPI, kind: str) -> None:
    async with serving(app, scope=None) as client:
        key = await refused_key(app, kind)
        before = verifications(state_of(app).metrics)
        with anyio.fail_after(10):
            statuses = [
                (await client.get("/v1/prompts", headers={"X-API-Key": key})).status_code
                for _ in range(3)
            ]
        after = verifications(state_of(app).metrics)

    assert statuses == [401, 401, 401]
    assert after == before


@pytest.mark.parametrize("kind", ["wrong_secret", "unknown_id"])
async def test_a_wrong_secret_or_unknown_id_costs_one_argon2_verification_per_attempt(
    app: FastAPI, kind: str
) -> None:
    """The same work for both, so timing does not tell which key ids exist."""
    async with serving(app, scope=None) as client:
        key = await refused_key(app, kind)
        before = verifications(state_of(app).metrics)
        with anyio.fail_after(10):
            statuses = [
                (await client.get("/v1/prompts", headers={"X-API-Key": key})).status_code
                for _ in range(3)
            ]
        after = verifications(state_of(app).metrics)

    assert statuses == [401, 401, 401]
    assert after == before + 3


async def test_an_mcp_session_answers_only_the_key_that_opened_it_until_revoked(
    app: FastAPI,
) -> None:
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    async with serving(app, scope=None) as client:
        owner, other = await issue_key(app, Scope.READ), await issue_key(app, Scope.ADMIN)
        with anyio.fail_after(10):
            opened = await client.post(
                MCP_MOUNT,
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
                headers={**MCP_ACCEPT, "X-API-Key": owner},
            )
            session = {**MCP_ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}
            by_other = await client.post(MCP_MOUNT, json=ping, headers={**session, **bearer(other)})
            by_owner = await client.post(MCP_MOUNT, json=ping, headers={**session, **bearer(owner)})
            await state_of(app).keys.revoke(parse_key(owner).key_id)
            after_revoke = await client.post(
                MCP_MOUNT, json=ping, headers={**session, **bearer(owner)}
            )

    assert opened.status_code == 200
    assert by_other.status_code == 404
    assert by_owner.status_code == 200
    assert outcome(after_revoke) == f"401 {INVALID_TOKEN}"
