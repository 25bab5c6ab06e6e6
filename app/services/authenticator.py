"""Authenticates presented API keys: argon2 once per key, then a bounded in-process cache.

Steady-state cost is one SHA-256 and a dict lookup. On the failure path:

- failures are counted per (source address, key id) and per source address, in fixed
  windows; a throttled source is refused (``AuthThrottled``, 429 with ``Retry-After``)
  *before* the store lookup and before any argon2, while a correct key sent from another
  address is verified normally, and a key already verified in this process is never
  throttled (failures sprayed at its public id cannot lock its holder out);
- an unknown key id costs the same argon2 verification as a wrong secret (against a dummy
  hash), so timing does not tell which ids exist;
- argon2 runs off the event loop, at most ``max_concurrent_verifications`` at once, with at
  most ``max_pending_verifications`` waiting; beyond that ``VerificationBusy`` (503) is
  answered at once, so guessing cannot queue unbounded CPU work.

Malformed keys never reach the store or argon2, but count as failures of their source.
"""

import contextlib
import hashlib
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from time import monotonic

import anyio
import anyio.to_thread

from domain.errors import CtxfyError
from domain.keys import KeyStatus, MalformedKey, Principal, parse_key
from domain.ports import KeyStore, KeyStoreUnavailable
from infrastructure.hashing import Argon2KeyHasher
from infrastructure.metrics import Metrics


class FailureReason(StrEnum):
    """Why authentication failed; never shown to clients, only logged and counted."""

    MISSING = "missing"
    AMBIGUOUS = "ambiguous"  # repeated headers, or two different keys
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    WRONG_SECRET = "wrong_secret"  # noqa: S105 — a reason label, not a secret
    REVOKED = "revoked"
    EXPIRED = "expired"
    THROTTLED = "throttled"  # too many failures from the source (429)
    BUSY = "busy"  # the argon2 budget is full (503)


class AuthThrottled(CtxfyError):
    """Too many failed authentications from this address; ``retry_after`` says how long."""

    code = "too_many_failed_attempts"

    def __init__(self, retry_after: int, key_id: str | None = None) -> None:
        super().__init__("Too many failed authentications from this address.")
        self.retry_after = retry_after
        self.key_id = key_id


class VerificationBusy(CtxfyError):
    """Every argon2 verification slot and queue place is taken; try again in a moment."""

    code = "authentication_busy"
    retry_after = 1


class AuthenticationFailed(CtxfyError):
    """The presented credential does not identify an active key."""

    code = "unauthorized"

    def __init__(self, reason: FailureReason, key_id: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Limits of the authenticator; every one is explicit."""

    cache_ttl_seconds: float = 60.0
    cache_size: int = 10_000
    max_failures: int = 10  # per (source address, key id) and window
    max_failures_per_source: int = 50  # per source address and window, over all key ids
    failure_window_seconds: float = 60.0
    max_concurrent_verifications: int = 2
    max_pending_verifications: int = 32


@dataclass(slots=True)
class _Cached:
    principal: Principal
    valid_until: float  # monotonic


class _FailureLimiter:
    """Counts failures per key in a fixed window; bounded in memory."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: dict[str, tuple[float, int]] = {}

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or ``None`` if it is not blocked."""
        started, count = self._failures.get(key, (0.0, 0))
        elapsed = self._clock() - started
        if elapsed >= self._window:
            self._failures.pop(key, None)
            return None
        return self._window - elapsed if count >= self._limit else None

    def record(self, key: str) -> None:
        now = self._clock()
        started, count = self._failures.get(key, (now, 0))
        if now - started >= self._window:
            started, count = now, 0
        self._failures[key] = (started, count + 1)
        if len(self._failures) > 100_000:  # bound memory under a spray of sources or ids
            oldest = min(self._failures, key=lambda k: self._failures[k][0])
            del self._failures[oldest]


class Authenticator:
    """Turns a presented key into a ``Principal`` or raises ``AuthenticationFailed``.

    Raises ``KeyStoreUnavailable`` when a key is not cached and the store cannot answer.
    """

    def __init__(
        self,
        store: KeyStore,
        hasher: Argon2KeyHasher,
        policy: AuthPolicy = AuthPolicy(),
        *,
        metrics: Metrics,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._policy = policy
        self._metrics = metrics
        self._now = now
        self._clock = clock
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        window = policy.failure_window_seconds
        self._pair_failures = _FailureLimiter(policy.max_failures, window, clock)
        self._source_failures = _FailureLimiter(policy.max_failures_per_source, window, clock)
        self._verifying = anyio.Semaphore(policy.max_concurrent_verifications)
        self._pending = 0  # verifications running or waiting for a slot
        self._dummy_hash: str | None = None  # verified against for unknown key ids
        self._in_flight: dict[bytes, anyio.Event] = {}
        # Full-key fingerprints already verified against a stored hash: such a key needs no
        # argon2 and is never throttled, so failures sprayed at a public key id cannot lock
        # its holder out. Bounded like the cache, but kept past the cache TTL.
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._last_used: dict[str, datetime] = {}

    async def authenticate(self, presented: str, client: str | None = None) -> Principal:
        """The principal of an active key; ``client`` (its address) scopes the throttle."""
        fingerprint = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        while True:
            cached = self._cache_get(fingerprint)
            if cached is not None:
                self._last_used[cached.key_id] = self._now()
                return cached
            waiting = self._in_flight.get(fingerprint)
            if waiting is None:
                break
            await waiting.wait()  # another request is verifying the same key
        done = self._in_flight[fingerprint] = anyio.Event()
        try:
            principal = await self._verify(presented, fingerprint, client or "")
        finally:
            del self._in_flight[fingerprint]
            done.set()
        self._last_used[principal.key_id] = self._now()
        return principal

    def forget(self, key_id: str) -> None:
        """Drop every cached entry of ``key_id`` (revocation, rotation)."""
        for fingerprint in [f for f, c in self._cache.items() if c.principal.key_id == key_id]:
            del self._cache[fingerprint]

    def drain_usage(self) -> dict[str, datetime]:
        """Last-use times recorded since the previous call, for one batched write."""
        usage, self._last_used = self._last_used, {}
        return usage

    def restore_usage(self, usage: dict[str, datetime]) -> None:
        """Keep drained times that could not be written; newer uses recorded meanwhile win."""
        self._last_used = usage | self._last_used

    def _cache_get(self, fingerprint: bytes) -> Principal | None:
        cached = self._cache.get(fingerprint)
        if cached is None:
            return None
        if self._clock() >= cached.valid_until:
            del self._cache[fingerprint]
            return None
        return cached.principal

    async def _verify(self, presented: str, fingerprint: bytes, client: str) -> Principal:
        try:
            key = parse_key(presented)
        except MalformedKey:
            self._source_failures.record(client)
            raise AuthenticationFailed(FailureReason.MALFORMED) from None
        pair = f"{key.key_id}|{client}"
        if fingerprint not in self._verified:
            self._check_throttle(client, pair, key.key_id)
        info = await self._store.get(key.key_id)
        if info is None:
            # The same argon2 work as a wrong secret, so timing does not tell ids apart.
            dummy = await self._dummy()
            await self._argon2(lambda: self._hasher.verify(dummy, key.secret), counted=True)
            self._failed(client, pair)
            raise AuthenticationFailed(FailureReason.UNKNOWN, key.key_id)
        now = self._now()
        status = info.status(now)
        if status is not KeyStatus.ACTIVE:
            # Checked before argon2 so retries of a dead key cost no CPU; the client sees
            # the same generic 401 either way.
            reason = FailureReason.REVOKED if status is KeyStatus.REVOKED else FailureReason.EXPIRED
            raise AuthenticationFailed(reason, key.key_id)
        if self._verified.get(fingerprint) != info.api_key_hash:
            if fingerprint in self._verified:  # verified before, under another hash: not checked
                self._check_throttle(client, pair, key.key_id)
            stored_hash = info.api_key_hash
            if not await self._argon2(
                lambda: self._hasher.verify(stored_hash, key.secret), counted=True
            ):
                self._failed(client, pair)
                raise AuthenticationFailed(FailureReason.WRONG_SECRET, key.key_id)
            self._remember(self._verified, fingerprint, info.api_key_hash)
        if self._hasher.needs_rehash(info.api_key_hash):
            await self._rehash(key.key_id, key.secret, fingerprint)
        principal = Principal(key_id=info.key_id, user_id=info.user_id, scope=info.scope)
        lifetime = min(self._policy.cache_ttl_seconds, (info.expires_at - now).total_seconds())
        self._cache_put(fingerprint, _Cached(principal, self._clock() + lifetime))
        return principal

    def _check_throttle(self, client: str, pair: str, key_id: str) -> None:
        waits = [
            wait
            for wait in (
                self._source_failures.retry_after(client),
                self._pair_failures.retry_after(pair),
            )
            if wait is not None
        ]
        if waits:
            raise AuthThrottled(max(1, math.ceil(max(waits))), key_id)

    def _failed(self, client: str, pair: str) -> None:
        self._source_failures.record(client)
        self._pair_failures.record(pair)

    async def _argon2[R](self, work: Callable[[], R], *, counted: bool) -> R:
        """Run argon2 ``work`` off the loop within the budget, or refuse at once when it is
        full; ``counted`` work is a verification, as the metric counts them."""
        if self._pending >= self._policy.max_concurrent_verifications + (
            self._policy.max_pending_verifications
        ):
            raise VerificationBusy("Too many keys are being verified; try again shortly.")
        self._pending += 1
        try:
            async with self._verifying:
                if counted:
                    self._metrics.key_verified()
                return await anyio.to_thread.run_sync(work)
        finally:
            self._pending -= 1

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            secret = secrets.token_urlsafe(32)
            self._dummy_hash = await anyio.to_thread.run_sync(self._hasher.hash, secret)
        return self._dummy_hash

    async def _rehash(self, key_id: str, secret: str, fingerprint: bytes) -> None:
        try:
            rehashed = await self._argon2(lambda: self._hasher.hash(secret), counted=False)
        except VerificationBusy:
            return  # the old hash still verifies; a later use rehashes
        # If the store is down the old hash still verifies; the next first use tries again.
        with contextlib.suppress(KeyStoreUnavailable):
            await self._store.update_hash(key_id, rehashed)
            self._remember(self._verified, fingerprint, rehashed)

    def _cache_put(self, fingerprint: bytes, entry: _Cached) -> None:
        self._remember(self._cache, fingerprint, entry)

    def _remember[V](self, table: OrderedDict[bytes, V], fingerprint: bytes, value: V) -> None:
        table[fingerprint] = value
        table.move_to_end(fingerprint)
        while len(table) > self._policy.cache_size:
            table.popitem(last=False)
