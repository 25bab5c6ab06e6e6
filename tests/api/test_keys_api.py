"""The admin key API: create, list, describe, revoke and rotate, and who may use it."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from domain.keys import LIFETIME_NOT_POSITIVE, Principal, Scope, ScopeNotGrantable, parse_key
from tests.api.harness import issue_key, serving, state_of
from tests.api.keys_helpers import insufficient_scope, status_with

pytestmark = pytest.mark.anyio

NEW_KEY = {"user_id": "ada@example.com", "scope": "read", "name": "ci pipeline"}


@pytest.fixture
async def admin(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client presenting an admin key, with the app's lifespan running."""
    async with serving(app, Scope.ADMIN) as client:
        yield client


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None, **params: str
) -> httpx.Response:
    """One bounded request."""
    with anyio.fail_after(10):
        return await client.request(method, path, json=body, params=params)


async def create(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A new key through the API; its body includes the plaintext ``key``."""
    response = await call(admin, "POST", "/v1/keys", {**NEW_KEY, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def lifetime(body: dict[str, Any]) -> timedelta:
    """How long a described key lives."""
    return datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"])


async def test_a_created_key_is_shown_once_and_never_again(admin: httpx.AsyncClient) -> None:
    created = await create(admin)
    listed = await call(admin, "GET", "/v1/keys")
    described = await call(admin, "GET", f"/v1/keys/{created['key_id']}")

    assert parse_key(created["key"]).key_id == created["key_id"]
    assert created["user_id"] == "ada@example.com"
    assert (created["scope"], created["status"], created["name"]) == (
        "read",
        "active",
        "ci pipeline",
    )
    assert listed.status_code == described.status_code == 200
    records = [*listed.json()["keys"], described.json()]
    assert [r["key_id"] for r in records].count(created["key_id"]) == 2
    for response in (listed, described):
        assert created["key"] not in response.text
        assert parse_key(created["key"]).secret not in response.text
        assert "argon2" not in response.text.lower()
    for record in records:
        assert "key" not in record
        assert "api_key_hash" not in record


async def test_a_created_key_authenticates_with_its_scope(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    created = await create(admin)

    assert await status_with(app, created["key"], "GET", "/v1/prompts") == 200
    assert await status_with(app, created["key"], "GET", "/v1/keys") == 403


async def test_a_key_lives_ninety_days_by_default(admin: httpx.AsyncClient) -> None:
    created = await create(admin)
    described = await call(admin, "GET", f"/v1/keys/{created['key_id']}")

    assert lifetime(created) == lifetime(described.json()) == timedelta(days=90)


@pytest.mark.parametrize("days", [1, 30, 365])
async def test_expires_in_days_sets_the_lifetime(admin: httpx.AsyncClient, days: int) -> None:
    created = await create(admin, expires_in_days=days)

    assert lifetime(created) == timedelta(days=days)


@pytest.mark.parametrize("days", [366, 10_000, 36_500])
async def test_a_lifetime_over_the_maximum_is_refused_as_the_schema_says(
    admin: httpx.AsyncClient, days: int
) -> None:
    response = await call(admin, "POST", "/v1/keys", {**NEW_KEY, "expires_in_days": days})

    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    (detail,) = response.json()["details"]
    assert detail["field"] == "expires_in_days"
    assert "365" in detail["message"]


async def test_a_zero_lifetime_is_refused_in_the_words_the_cli_uses(
    admin: httpx.AsyncClient,
) -> None:
    response = await call(admin, "POST", "/v1/keys", {**NEW_KEY, "expires_in_days": 0})

    assert response.status_code == 422
    (detail,) = response.json()["details"]
    assert (detail["field"], detail["message"]) == ("expires_in_days", LIFETIME_NOT_POSITIVE)


async def test_an_absurd_lifetime_is_refused_not_a_server_error(admin: httpx.AsyncClient) -> None:
    response = await call(admin, "POST", "/v1/keys", {**NEW_KEY, "expires_in_days": 10**9})

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_id", ""),
        ("user_id", "has space"),
        ("user_id", "x" * 129),
        ("user_id", "semi;colon"),
        ("scope", "root"),
        ("scope", "ADMIN"),
        ("expires_in_days", 0),
        ("name", "n" * 101),
    ],
)
async def test_an_invalid_field_is_a_validation_error_naming_it(
    admin: httpx.AsyncClient, field: str, value: object
) -> None:
    response = await call(admin, "POST", "/v1/keys", {**NEW_KEY, field: value})

    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert [d["field"] for d in response.json()["details"]] == [field]


async def test_the_list_can_be_filtered_by_user(admin: httpx.AsyncClient) -> None:
    ada = [(await create(admin, user_id="ada"))["key_id"] for _ in range(2)]
    await create(admin, user_id="grace")

    listed = (await call(admin, "GET", "/v1/keys", user_id="ada")).json()

    assert sorted(k["key_id"] for k in listed["keys"]) == sorted(ada)
    assert listed["count"] == 2
    assert (await call(admin, "GET", "/v1/keys", user_id="nobody")).json() == {
        "keys": [],
        "count": 0,
    }


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")]
)
async def test_an_unknown_key_id_is_not_found(
    admin: httpx.AsyncClient, method: str, suffix: str
) -> None:
    response = await call(admin, method, f"/v1/keys/0123456789abcdef{suffix}")

    assert response.status_code == 404
    assert response.json()["error"] == "key_not_found"


@pytest.mark.parametrize(
    "key_id", ["not-a-key-id", "0123456789ABCDEF", "0123456789abcde", "g" * 16]
)
@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")]
)
async def test_a_malformed_key_id_is_a_validation_error(
    admin: httpx.AsyncClient, key_id: str, method: str, suffix: str
) -> None:
    response = await call(admin, method, f"/v1/keys/{key_id}{suffix}")

    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert [d["field"] for d in response.json()["details"]] == ["key_id"]


async def test_a_revoked_key_is_refused_at_once_and_revoking_again_changes_nothing(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    created = await create(admin)
    assert await status_with(app, created["key"]) == 200  # now verified and cached

    first = await call(admin, "POST", f"/v1/keys/{created['key_id']}/revoke")
    second = await call(admin, "POST", f"/v1/keys/{created['key_id']}/revoke")

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "revoked"
    assert first.json()["revoked_at"] is not None
    assert second.json()["revoked_at"] == first.json()["revoked_at"]
    assert await status_with(app, created["key"]) == 401


async def test_a_rotated_key_keeps_working_through_its_grace_period(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    old = await create(admin)
    assert await status_with(app, old["key"]) == 200
    before = datetime.now(UTC)

    rotated = await call(admin, "POST", f"/v1/keys/{old['key_id']}/rotate", {"grace_seconds": 3600})
    after = datetime.now(UTC)
    described = (await call(admin, "GET", f"/v1/keys/{old['key_id']}")).json()

    assert rotated.status_code == 201
    new = rotated.json()
    assert new["key_id"] != old["key_id"]
    assert (new["user_id"], new["scope"], new["name"]) == (old["user_id"], "read", "ci pipeline")
    assert await status_with(app, new["key"]) == 200
    assert await status_with(app, old["key"]) == 200
    assert described["replaced_by"] == new["key_id"]
    assert described["status"] == "active"
    grace_ends = datetime.fromisoformat(described["expires_at"])
    assert before + timedelta(hours=1) <= grace_ends <= after + timedelta(hours=1)


@pytest.mark.parametrize("body", [{"grace_seconds": 0}, {}, None])
async def test_a_rotated_key_without_grace_is_refused_at_once(
    app: FastAPI, admin: httpx.AsyncClient, body: dict[str, int] | None
) -> None:
    old = await create(admin)
    assert await status_with(app, old["key"]) == 200  # now verified and cached

    rotated = await call(admin, "POST", f"/v1/keys/{old['key_id']}/rotate", body)

    assert rotated.status_code == 201
    assert await status_with(app, rotated.json()["key"]) == 200
    assert await status_with(app, old["key"]) == 401


async def test_a_revoked_key_cannot_be_rotated(admin: httpx.AsyncClient) -> None:
    created = await create(admin)
    await call(admin, "POST", f"/v1/keys/{created['key_id']}/revoke")

    response = await call(admin, "POST", f"/v1/keys/{created['key_id']}/rotate", {})

    assert response.status_code == 409
    assert response.json()["error"] == "key_conflict"


async def test_a_key_in_its_grace_period_cannot_be_rotated_again(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    """A second rotation would leave two live successors; the refusal names the first."""
    old = await create(admin)
    rotated = await call(admin, "POST", f"/v1/keys/{old['key_id']}/rotate", {"grace_seconds": 3600})
    before = (await call(admin, "GET", "/v1/keys")).json()["count"]

    again = await call(admin, "POST", f"/v1/keys/{old['key_id']}/rotate", {"grace_seconds": 60})

    assert again.status_code == 409
    assert again.json()["error"] == "key_conflict"
    assert rotated.json()["key_id"] in again.json()["message"]
    assert await status_with(app, old["key"]) == 200  # still in its grace period
    assert (await call(admin, "GET", "/v1/keys")).json()["count"] == before


@pytest.mark.parametrize("scope", [Scope.READ, Scope.WRITE])
async def test_only_an_admin_key_may_use_the_key_api(
    app: FastAPI, admin: httpx.AsyncClient, scope: Scope
) -> None:
    target = (await create(admin))["key_id"]
    routes = [
        ("POST", "/v1/keys", NEW_KEY),
        ("GET", "/v1/keys", None),
        ("GET", f"/v1/keys/{target}", None),
        ("POST", f"/v1/keys/{target}/revoke", None),
        ("POST", f"/v1/keys/{target}/rotate", {}),
    ]
    async with serving(app, scope) as client:
        answers = [await call(client, method, path, body) for method, path, body in routes]

    for response in answers:
        assert response.status_code == 403
        assert response.headers["www-authenticate"] == insufficient_scope(Scope.ADMIN)
        assert response.json()["error"] == "insufficient_scope"
    assert (await call(admin, "GET", f"/v1/keys/{target}")).json()["status"] == "active"


@pytest.mark.parametrize(
    ("granter", "wanted"),
    [(Scope.READ, Scope.WRITE), (Scope.READ, Scope.ADMIN), (Scope.WRITE, Scope.ADMIN)],
)
async def test_a_key_can_never_mint_a_broader_key(
    app: FastAPI, granter: Scope, wanted: Scope
) -> None:
    async with serving(app, scope=None):
        key_id = parse_key(await issue_key(app, granter)).key_id
        caller = Principal(key_id=key_id, user_id="tester", scope=granter)

        with pytest.raises(ScopeNotGrantable):
            await state_of(app).keys.create(user_id="mallory", scope=wanted, granter=caller)
        minted = await state_of(app).keys.list(user_id="mallory")

    assert minted == []
