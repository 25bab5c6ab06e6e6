"""Key management: create, list, revoke and rotate, for the CLI and the admin API alike;
and the batched, off-request-path writing of last-use times."""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import anyio.to_thread
import structlog

from app.services.authenticator import Authenticator
from domain.keys import (
    ApiKeyInfo,
    KeyNotFound,
    KeyStatus,
    Principal,
    Scope,
    ScopeNotGrantable,
    generate_key,
    may_grant,
    new_key_info,
    rotation_deadline,
)
from domain.ports import DuplicateKeyId, KeyStore, KeyStoreUnavailable
from infrastructure.hashing import Argon2KeyHasher

ISSUE_ATTEMPTS = 3
OPERATOR = "cli"  # the actor of key operations run from the command line

audit = structlog.get_logger("ctxfy.audit")
logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: the plaintext is shown exactly once, then only the record remains."""

    plaintext: str
    info: ApiKeyInfo

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.info.key_id!r}, plaintext='***')"


@dataclass(frozen=True, slots=True)
class KeyLifetimes:
    """Default and maximum lifetime of a key."""

    default: timedelta = timedelta(days=90)
    maximum: timedelta = timedelta(days=365)


class KeyService:
    """The one implementation of key lifecycle operations."""

    def __init__(
        self,
        store: KeyStore,
        hasher: Argon2KeyHasher,
        lifetimes: KeyLifetimes = KeyLifetimes(),
        *,
        authenticator: Authenticator,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._lifetimes = lifetimes
        self._authenticator = authenticator
        self._now = now
        self._ended_listeners: list[Callable[[str], Awaitable[object]]] = []

    def on_key_ended(self, listener: Callable[[str], Awaitable[object]]) -> None:
        """Call ``listener(key_id)`` when this service revokes a key, or rotates one without
        a grace period: whatever the key holds open (MCP sessions, streams) can be closed."""
        self._ended_listeners.append(listener)

    async def key_ended(self, key_id: str) -> None:
        """Tell the listeners ``key_id`` no longer works (also for ends found elsewhere)."""
        for listener in self._ended_listeners:
            await listener(key_id)

    async def ended_of(self, key_ids: Iterable[str]) -> list[str]:
        """Which of ``key_ids`` are no longer active (revoked, expired or gone), per the store.

        Raises:
            KeyStoreUnavailable: the store cannot be reached.
        """
        now = self._now()
        ended = []
        for key_id in key_ids:
            info = await self._store.get(key_id)
            if info is None or info.status(now) is not KeyStatus.ACTIVE:
                ended.append(key_id)
        return ended

    async def create(
        self,
        *,
        user_id: str,
        scope: Scope,
        name: str = "",
        lifetime: timedelta | None = None,
        granter: Principal | None = None,
    ) -> IssuedKey:
        """Issue a key; ``granter`` is the calling key (``None``: the operator's CLI).

        Raises:
            ScopeNotGrantable: the granter's scope is narrower than ``scope``.
            KeyLifecycleError: the lifetime is not positive or over the maximum.
        """
        if not may_grant(granter, scope):
            audit.warning(
                "key_create_refused", audit=True, actor=_actor(granter), scope=scope.value
            )
            raise ScopeNotGrantable(scope)
        issued = await self._issue(
            user_id=user_id,
            scope=scope,
            name=name,
            lifetime=self._lifetimes.default if lifetime is None else lifetime,
        )
        audit.info(
            "key_created",
            audit=True,
            actor=_actor(granter),
            key_id=issued.info.key_id,
            user_id=user_id,
            scope=scope.value,
            expires_at=issued.info.expires_at.isoformat(),
        )
        return issued

    async def list(self, *, user_id: str | None = None) -> Sequence[ApiKeyInfo]:
        """Every key (of one user), newest first; never a secret."""
        return await self._store.list(user_id=user_id)

    async def get(self, key_id: str) -> ApiKeyInfo:
        """One key's record; raises ``KeyNotFound``."""
        info = await self._store.get(key_id)
        if info is None:
            raise KeyNotFound(key_id)
        return info

    async def revoke(self, key_id: str, *, actor: Principal | None = None) -> ApiKeyInfo:
        """Revoke a key now; immediate in this process, within the cache TTL elsewhere."""
        info = await self._store.revoke(key_id, self._now())
        if info is None:
            raise KeyNotFound(key_id)
        self._forget(key_id)
        audit.info(
            "key_revoked", audit=True, actor=_actor(actor), key_id=key_id, user_id=info.user_id
        )
        await self.key_ended(key_id)
        return info

    async def rotate(
        self, key_id: str, *, grace: timedelta = timedelta(0), actor: Principal | None = None
    ) -> IssuedKey:
        """Issue a replacement with the same owner, scope and name; the old key keeps
        working until the grace period ends (never beyond its own expiry).

        Raises:
            KeyNotFound: no such key.
            KeyLifecycleError: the grace period is negative.
            KeyConflict: the key is not active, or was rotated already.
        """
        old = await self.get(key_id)
        now = self._now()
        deadline = rotation_deadline(old, now=now, grace=grace)
        issued = await self._prepare(
            user_id=old.user_id, scope=old.scope, name=old.name, lifetime=self._lifetimes.default
        )
        await self._store.rotate(key_id, issued.info, deadline)
        self._forget(key_id)
        audit.info(
            "key_rotated",
            audit=True,
            actor=_actor(actor),
            key_id=key_id,
            new_key_id=issued.info.key_id,
            user_id=old.user_id,
            old_key_expires_at=deadline.isoformat(),
        )
        if deadline <= now:
            await self.key_ended(key_id)
        return issued

    async def _issue(
        self, *, user_id: str, scope: Scope, name: str, lifetime: timedelta
    ) -> IssuedKey:
        for attempt in range(ISSUE_ATTEMPTS):
            issued = await self._prepare(user_id=user_id, scope=scope, name=name, lifetime=lifetime)
            try:
                await self._store.add(issued.info)
            except DuplicateKeyId:
                if attempt == ISSUE_ATTEMPTS - 1:
                    raise
                continue  # a 64-bit id collided; draw another key
            return issued
        raise AssertionError("unreachable")  # pragma: no cover

    async def _prepare(
        self, *, user_id: str, scope: Scope, name: str, lifetime: timedelta
    ) -> IssuedKey:
        key = generate_key()
        api_key_hash = await anyio.to_thread.run_sync(self._hasher.hash, key.secret)
        info = new_key_info(
            key=key,
            api_key_hash=api_key_hash,
            user_id=user_id,
            name=name,
            scope=scope,
            now=self._now(),
            lifetime=lifetime,
            max_lifetime=self._lifetimes.maximum,
        )
        return IssuedKey(plaintext=key.plaintext, info=info)

    async def flush_usage(self) -> None:
        """Write the last-use times gathered since the previous flush, in one batch."""
        usage = self._authenticator.drain_usage()
        if not usage:
            return
        try:
            await self._store.record_usage(usage)
        except KeyStoreUnavailable:
            logger.warning("key_usage_not_recorded", keys=len(usage))
            self._authenticator.restore_usage(usage)  # for the next flush

    async def flush_usage_every(self, seconds: float) -> None:
        """Flush every ``seconds`` until cancelled (a background task of the server)."""
        while True:
            await anyio.sleep(seconds)
            await self.flush_usage()

    def _forget(self, key_id: str) -> None:
        self._authenticator.forget(key_id)


def _actor(principal: Principal | None) -> str:
    """Who acted: the calling key's id, or the operator's command line."""
    return principal.key_id if principal is not None else OPERATOR
