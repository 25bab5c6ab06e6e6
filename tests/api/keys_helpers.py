"""Credentials of every kind, built against a running app, and how the auth layer answers them."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import httpx2
from fastapi import FastAPI

from app.settings import Settings
from domain.keys import (
    ALPHABET,
    KEY_LENGTH,
    KEY_PATTERN,
    ApiKeyInfo,
    MalformedKey,
    PresentedKey,
    Scope,
    generate_key,
    parse_key,
)
from infrastructure.hashing import Argon2KeyHasher, Argon2Parameters
from tests.api.harness import asgi_client, bearer, issue_key, state_of

REALM = 'Bearer realm="ctxfy"'
INVALID_TOKEN = f'{REALM}, error="invalid_token"'
MCP_ACCEPT = {"accept": "application/json, text/event-stream"}
# Every kind of key that must be refused with the same 401, whatever its flaw.
REFUSED_KINDS = ("malformed", "bad_checksum", "unknown_id", "wrong_secret", "revoked", "expired")
HIERARCHY = (Scope.READ, Scope.WRITE, Scope.ADMIN)  # each includes the ones before it
MCP_MOUNT = "/mcp"
# The scope matrices send every refused kind of key to every operation from one address: far
# past the auth throttle, which has its own tests (test_auth_throttle.py), and, with a preview
# and generate route per prompt version, past the rate limits (test_rate_limits.py).
UNTHROTTLED: dict[str, int | str] = {
    "auth_max_failures": 1_000_000,
    "auth_max_failures_per_source": 1_000_000,
    "rate_limit_read": "off",
    "rate_limit_write": "off",
    "rate_limit_generate": "off",
}
ALLOWED = "allowed"
INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "ctxfy-auth-matrix", "version": "1.0.0"},
}


def outcome(response: httpx.Response | httpx2.Response) -> str:
    """How the auth layer answered: a refusal with its challenge, or not a refusal."""
    status = response.status_code
    if status in (401, 403):
        return f"{status} {response.headers.get('www-authenticate', '<no challenge>')}"
    return ALLOWED if status < 500 else f"{status} server error"


def insufficient_scope(needed: Scope) -> str:
    """The ``WWW-Authenticate`` value of a 403 for a key lacking ``needed``."""
    return f'{REALM}, error="insufficient_scope", scope="{needed.value}"'


@dataclass(frozen=True, slots=True)
class Credential:
    """What a client presents: ``key`` is ``None`` for no credential at all."""

    kind: str
    key: str | None
    scope: Scope | None = None  # what the key grants; ``None``: it must be refused

    @property
    def headers(self) -> dict[str, str]:
        """The request headers that present this credential."""
        return bearer(self.key) if self.key is not None else {}


def with_bad_checksum(key: str) -> str:
    """``key`` with its last character changed: the right shape, a wrong checksum."""
    replacement = next(c for c in ALPHABET if c != key[-1])
    mangled = key[:-1] + replacement
    assert len(mangled) == KEY_LENGTH
    assert KEY_PATTERN.fullmatch(mangled) is not None
    try:
        parse_key(mangled)
    except MalformedKey:
        return mangled
    raise AssertionError("a changed checksum character still parsed")


def with_other_secret(key: str) -> str:
    """A well-formed key (valid checksum) with ``key``'s id and a different secret."""
    presented = parse_key(key)
    other = generate_key().secret
    assert other != presented.secret
    return PresentedKey(presented.key_id, other).plaintext


async def revoked_key(app: FastAPI) -> str:
    """An admin key that worked (so the authenticator cached it), then was revoked."""
    key = await issue_key(app, Scope.ADMIN, user_id="revoked-user")
    assert await status_with(app, key) == 200
    await state_of(app).keys.revoke(parse_key(key).key_id)
    return key


async def expired_key(app: FastAPI, scope: Scope = Scope.ADMIN) -> str:
    """A key stored with a real argon2id hash whose lifetime ended ten days ago."""
    settings = Settings()  # the hermetic test settings every API test's app is built from
    hasher = Argon2KeyHasher(
        Argon2Parameters(
            time_cost=settings.argon2_time_cost,
            memory_cost_kib=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
        )
    )
    key = generate_key()
    now = datetime.now(UTC)
    await state_of(app).key_store.add(
        ApiKeyInfo(
            key_id=key.key_id,
            api_key_hash=hasher.hash(key.secret),
            user_id="expired-user",
            name="expired",
            scope=scope,
            created_at=now - timedelta(days=100),
            expires_at=now - timedelta(days=10),
        )
    )
    return key.plaintext


async def refused_key(app: FastAPI, kind: str) -> str:
    """A key of one of ``REFUSED_KINDS``, against ``app``'s running key store."""
    match kind:
        case "malformed":
            return "not-a-key"
        case "bad_checksum":
            return with_bad_checksum(await issue_key(app, Scope.ADMIN, user_id="checksum-user"))
        case "unknown_id":
            return generate_key().plaintext
        case "wrong_secret":
            # Its own victim key: failed verifications throttle the key id they name.
            return with_other_secret(await issue_key(app, Scope.ADMIN, user_id="victim-user"))
        case "revoked":
            return await revoked_key(app)
        case "expired":
            return await expired_key(app)
    raise ValueError(f"unknown credential kind {kind!r}")


async def credentials(app: FastAPI) -> list[Credential]:
    """One credential of every kind: none, each refused kind, then read, write and admin."""
    refused = [Credential(kind, await refused_key(app, kind)) for kind in REFUSED_KINDS]
    granted = [
        Credential(scope.value, await issue_key(app, scope, user_id=f"{scope.value}-user"), scope)
        for scope in Scope
    ]
    return [Credential("none", None), *refused, *granted]


async def status_with(
    app: FastAPI, key: str, method: str = "GET", path: str = "/v1/prompts"
) -> int:
    """The status ``app`` answers ``key`` with on one request."""
    async with asgi_client(app) as client:
        response = await client.request(method, path, headers=bearer(key))
    return response.status_code


def challenge_of(response: httpx.Response) -> str:
    """A response's status with its ``WWW-Authenticate`` challenge, if any."""
    challenge = response.headers.get("www-authenticate")
    return f"{response.status_code} {challenge}" if challenge else str(response.status_code)
