"""Admin API for keys: create, list, describe, revoke, rotate. Every route needs ``admin``."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, create_model
from pydantic_core import PydanticCustomError

from app.http.deps import Admin, Keys
from app.http.errors import SECURED, WITH_BODY, responses
from app.http.security import InsufficientScope, require_scope
from app.services.keys import IssuedKey
from domain.keys import (
    NAME_MAX_LENGTH,
    USER_ID_PATTERN,
    ApiKeyInfo,
    InvalidKeyName,
    KeyConflict,
    KeyLifecycleError,
    KeyNotFound,
    KeyStatus,
    Scope,
    ScopeNotGrantable,
    check_lifetime,
)
from domain.text import NAME_PATTERN

TAG = "keys"
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The key's public id.")]

_ERRORS = responses(
    *SECURED,
    *WITH_BODY,
    InsufficientScope,
    ScopeNotGrantable,
    KeyNotFound,
    KeyLifecycleError,
    KeyConflict,
    InvalidKeyName,
)


class KeyOut(BaseModel):
    """A key's record. The secret is never part of it."""

    key_id: str = Field(examples=["3f9a1c0e5b7d2a64"])
    user_id: str
    name: str
    scope: Scope
    status: KeyStatus
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    replaced_by: str | None


class IssuedKeyOut(KeyOut):
    """A newly issued key. ``key`` is shown only in this response; store it now."""

    key: str = Field(description="The API key itself. It cannot be retrieved again.")


class KeyList(BaseModel):
    """Keys, newest first."""

    keys: list[KeyOut]
    count: int


class CreateKey(BaseModel):
    """What a new key is for."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=USER_ID_PATTERN.pattern, examples=["ada@example.com"])
    scope: Scope = Field(examples=["read"])
    name: str = Field("", max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN, examples=["ci"])
    expires_in_days: int | None = Field(
        None, ge=1, description="Lifetime in days; the server default when absent."
    )


def _lifetime_rule(max_lifetime_days: int) -> Callable[[int | None], int | None]:
    """The domain's lifetime rule, so REST refuses 0 or too many days in the CLI's words."""
    longest = timedelta(days=max_lifetime_days)

    def check(days: int | None) -> int | None:
        if days is not None:
            try:
                check_lifetime(timedelta(days=min(days, timedelta.max.days)), longest)
            except KeyLifecycleError as refused:
                raise PydanticCustomError("key_lifetime", str(refused)) from None
        return days

    return check


def create_key_body(max_lifetime_days: int) -> type[CreateKey]:
    """``CreateKey`` with the server's maximum lifetime in its schema, as it is enforced."""
    bounds: dict[str, JsonValue] = {"minimum": 1, "maximum": max_lifetime_days}
    return create_model(
        "CreateKey",
        __base__=CreateKey,
        __doc__=CreateKey.__doc__,
        expires_in_days=(
            Annotated[
                Annotated[int, Field(json_schema_extra=bounds)] | None,
                AfterValidator(_lifetime_rule(max_lifetime_days)),
            ],
            Field(None, description="Lifetime in days; the server default when absent."),
        ),
    )


class RotateKey(BaseModel):
    """How long the old key keeps working after rotation."""

    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(0, ge=0, le=30 * 86_400)


def key_out(info: ApiKeyInfo, now: datetime) -> dict[str, Any]:
    """The public fields of a key record."""
    return {
        "key_id": info.key_id,
        "user_id": info.user_id,
        "name": info.name,
        "scope": info.scope,
        "status": info.status(now),
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
        "replaced_by": info.replaced_by,
    }


def _issued(issued: IssuedKey) -> IssuedKeyOut:
    return IssuedKeyOut(key=issued.plaintext, **key_out(issued.info, issued.info.created_at))


def build_router(max_lifetime_days: int) -> APIRouter:
    """Key management routes; keys live at most ``max_lifetime_days``."""
    router = APIRouter(
        prefix="/v1/keys",
        tags=[TAG],
        responses=_ERRORS,
        dependencies=[Depends(require_scope(Scope.ADMIN))],
    )

    async def create_key(body: CreateKey, keys: Keys, caller: Admin) -> IssuedKeyOut:
        lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
        issued = await keys.create(
            user_id=body.user_id,
            scope=body.scope,
            name=body.name,
            lifetime=lifetime,
            granter=caller,
        )
        return _issued(issued)

    # The same fields, with this server's maximum lifetime in the schema it enforces.
    create_key.__annotations__["body"] = create_key_body(max_lifetime_days)
    router.add_api_route(
        "",
        create_key,
        methods=["POST"],
        status_code=201,
        operation_id="create_key",
        summary="Create a key",
    )

    @router.get("", operation_id="list_keys", summary="List keys")
    async def list_keys(
        keys: Keys,
        user_id: Annotated[str | None, Query(description="Only this user's keys.")] = None,
    ) -> KeyList:
        now = datetime.now(UTC)
        found = [KeyOut(**key_out(info, now)) for info in await keys.list(user_id=user_id)]
        return KeyList(keys=found, count=len(found))

    @router.get("/{key_id}", operation_id="get_key", summary="Describe a key")
    async def get_key(key_id: KeyId, keys: Keys) -> KeyOut:
        info = await keys.get(key_id)
        return KeyOut(**key_out(info, datetime.now(UTC)))

    # Revoking keeps the record (status ``revoked``) for audit, so it is an action on the key,
    # not a DELETE: the key stays readable afterwards.
    @router.post("/{key_id}/revoke", operation_id="revoke_key", summary="Revoke a key")
    async def revoke_key(key_id: KeyId, keys: Keys, caller: Admin) -> KeyOut:
        info = await keys.revoke(key_id, actor=caller)
        return KeyOut(**key_out(info, datetime.now(UTC)))

    @router.post(
        "/{key_id}/rotate", status_code=201, operation_id="rotate_key", summary="Rotate a key"
    )
    async def rotate_key(
        key_id: KeyId, keys: Keys, caller: Admin, body: RotateKey | None = None
    ) -> IssuedKeyOut:
        grace = timedelta(seconds=body.grace_seconds if body else 0)
        return _issued(await keys.rotate(key_id, grace=grace, actor=caller))

    return router
