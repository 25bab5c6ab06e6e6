"""The authenticator against a real SQLite key store and real argon2, with time driven."""

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from app.services.authenticator import (
    AuthenticationFailed,
    Authenticator,
    AuthPolicy,
    AuthThrottled,
    FailureReason,
    VerificationBusy,
)
from app.services.keys import IssuedKey, KeyService
from domain.keys import PresentedKey, Scope, generate_key, parse_key
from domain.ports import KeyStoreUnavailable
from infrastructure.hashing import Argon2KeyHasher, Argon2Parameters
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.metrics import Metrics
from tests.fakes import Clock, SwitchableKeyStore, verifications

pytestmark = pytest.mark.anyio
CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=1024, parallelism=1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SwitchableKeyStore
    authenticator: Authenticator
    keys: KeyService
    clock: Clock
    metrics: Metrics

    @property
    def verifications(self) -> float:
        """argon2 verifications so far, as the metric counts them."""
        return verifications(self.metrics)

    async def issue(self, scope: Scope = Scope.READ) -> IssuedKey:
        return await self.keys.create(user_id="ada", scope=scope, name="t")


def build(
    store: SwitchableKeyStore, clock: Clock, hasher: Argon2KeyHasher, policy: AuthPolicy
) -> World:
    metrics = Metrics(version="test")
    authenticator = Authenticator(
        store, hasher, policy, metrics=metrics, now=lambda: clock.wall, clock=lambda: clock.mono
    )
    keys = KeyService(store, hasher, authenticator=authenticator, now=lambda: clock.wall)
    return World(store=store, authenticator=authenticator, keys=keys, clock=clock, metrics=metrics)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SwitchableKeyStore(SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}"))
    await store.start()
    policy = AuthPolicy(cache_ttl_seconds=60, cache_size=3, max_failures=3)
    yield build(store, Clock(), Argon2KeyHasher(CHEAP), policy)
    await store.close()


def _break_checksum(text: str) -> str:
    """The key with its last checksum character changed (so the checksum cannot match)."""
    return text[:-1] + ("1" if text[-1] != "1" else "2")


async def reason_for(world: World, presented: str) -> FailureReason:
    with anyio.fail_after(10), pytest.raises(AuthenticationFailed) as failed:
        await world.authenticator.authenticate(presented)
    return failed.value.reason


async def test_an_active_key_yields_its_principal_with_one_verification(world: World) -> None:
    issued = await world.issue(Scope.WRITE)
    principal = await world.authenticator.authenticate(issued.plaintext)
    assert (principal.key_id, principal.user_id, principal.scope) == (
        issued.info.key_id,
        "ada",
        Scope.WRITE,
    )
    assert world.verifications == 1


async def test_a_cached_key_costs_no_store_lookup_and_no_argon2(world: World) -> None:
    issued = await world.issue()
    await world.authenticator.authenticate(issued.plaintext)
    gets = world.store.gets
    for _ in range(100):
        await world.authenticator.authenticate(issued.plaintext)
    assert (world.store.gets, world.verifications) == (gets, 1)


async def test_a_cached_key_keeps_working_while_the_store_is_away(world: World) -> None:
    issued = await world.issue()
    await world.authenticator.authenticate(issued.plaintext)
    world.store.down = True
    assert (await world.authenticator.authenticate(issued.plaintext)).key_id == issued.info.key_id


async def test_an_uncached_key_while_the_store_is_away_is_unavailable_not_unauthorized(
    world: World,
) -> None:
    issued = await world.issue()
    world.store.down = True
    with pytest.raises(KeyStoreUnavailable):
        await world.authenticator.authenticate(issued.plaintext)


async def test_after_the_cache_ttl_the_store_is_asked_again_but_argon2_is_not(
    world: World,
) -> None:
    issued = await world.issue()
    await world.authenticator.authenticate(issued.plaintext)
    gets = world.store.gets
    world.clock.advance(61)
    await world.authenticator.authenticate(issued.plaintext)
    assert (world.store.gets, world.verifications) == (gets + 1, 1)


async def test_a_changed_hash_makes_a_known_key_verify_again(world: World) -> None:
    issued = await world.issue()
    await world.authenticator.authenticate(issued.plaintext)
    secret = parse_key(issued.plaintext).secret
    await world.store.update_hash(issued.info.key_id, Argon2KeyHasher(CHEAP).hash(secret))
    world.clock.advance(61)
    await world.authenticator.authenticate(issued.plaintext)
    assert world.verifications == 2


async def test_a_key_revoked_elsewhere_stops_working_once_the_ttl_lapses(
    world: World, tmp_path: Path
) -> None:
    issued = await world.issue()
    await world.authenticator.authenticate(issued.plaintext)
    other = build(world.store, world.clock, Argon2KeyHasher(CHEAP), AuthPolicy())
    await other.keys.revoke(issued.info.key_id)

    await world.authenticator.authenticate(issued.plaintext)  # still cached here
    world.clock.advance(61)
    assert await reason_for(world, issued.plaintext) is FailureReason.REVOKED


async def test_revoking_in_this_process_takes_effect_immediately(world: World) -> None:
    issued = await world.issue()
    await world.authenticator.authenticate(issued.plaintext)
    await world.keys.revoke(issued.info.key_id)
    assert await reason_for(world, issued.plaintext) is FailureReason.REVOKED


async def test_a_cached_key_is_not_trusted_past_its_own_expiry(world: World) -> None:
    issued = await world.keys.create(
        user_id="ada", scope=Scope.READ, lifetime=timedelta(seconds=30)
    )
    await world.authenticator.authenticate(issued.plaintext)
    world.clock.advance(31)
    assert await reason_for(world, issued.plaintext) is FailureReason.EXPIRED


@pytest.mark.parametrize(
    "presented",
    ["", "ctxfy_not-a-key", _break_checksum(generate_key().plaintext)],
    ids=["empty", "shape", "checksum"],
)
async def test_malformed_keys_never_reach_the_store_or_argon2(world: World, presented: str) -> None:
    world.store.down = True  # a lookup would fail: there is none
    assert await reason_for(world, presented) is FailureReason.MALFORMED
    assert world.verifications == 0


async def test_an_unknown_key_id_costs_the_same_argon2_work_as_a_wrong_secret(
    world: World,
) -> None:
    """So timing does not tell which key ids exist."""
    issued = await world.issue()
    wrong = PresentedKey(key_id=issued.info.key_id, secret=generate_key().secret).plaintext

    assert await reason_for(world, generate_key().plaintext) is FailureReason.UNKNOWN
    after_unknown = world.verifications
    assert await reason_for(world, wrong) is FailureReason.WRONG_SECRET

    assert after_unknown == 1
    assert world.verifications - after_unknown == 1


async def throttled(world: World, presented: str, client: str = "") -> AuthThrottled:
    with anyio.fail_after(10), pytest.raises(AuthThrottled) as refused:
        await world.authenticator.authenticate(presented, client)
    return refused.value


async def test_a_wrong_secret_is_refused_and_repeated_failures_are_throttled_without_argon2(
    world: World,
) -> None:
    issued = await world.issue()
    wrong = PresentedKey(key_id=issued.info.key_id, secret=generate_key().secret).plaintext
    reasons = [await reason_for(world, wrong) for _ in range(3)]
    assert reasons == [FailureReason.WRONG_SECRET] * 3
    world.clock.advance(20)
    assert (await throttled(world, wrong)).retry_after == 40  # what is left of the window
    assert (await throttled(world, issued.plaintext)).key_id == issued.info.key_id
    assert world.verifications == 3

    world.clock.advance(40)
    assert (await world.authenticator.authenticate(issued.plaintext)).key_id == issued.info.key_id


async def test_a_throttled_source_is_refused_before_the_store_is_asked(world: World) -> None:
    """Guesses stop reaching the store (and argon2) once the source is throttled."""
    guess = generate_key().plaintext
    for _ in range(3):
        await reason_for(world, guess)
    gets, verified = world.store.gets, world.verifications

    refused = await throttled(world, guess)

    assert refused.retry_after == 60
    assert (world.store.gets, world.verifications) == (gets, verified)


async def test_failures_over_many_key_ids_throttle_the_source_as_a_whole(tmp_path: Path) -> None:
    store = SwitchableKeyStore(SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}"))
    await store.start()
    policy = AuthPolicy(max_failures=3, max_failures_per_source=5)
    world = build(store, Clock(), Argon2KeyHasher(CHEAP), policy)
    try:
        issued = await world.issue()
        for _ in range(5):  # five different ids, each under its own limit of 3
            with pytest.raises(AuthenticationFailed):
                await world.authenticator.authenticate(generate_key().plaintext, "192.0.2.1")

        await throttled(world, issued.plaintext, "192.0.2.1")
        principal = await world.authenticator.authenticate(issued.plaintext, "192.0.2.2")
        assert principal.key_id == issued.info.key_id
    finally:
        await store.close()


class HeldHasher(Argon2KeyHasher):
    """argon2 that, once ``hold`` is set, waits in ``verify`` until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(CHEAP)
        self.hold = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()

    def verify(self, stored_hash: str, secret: str) -> bool:
        if self.hold.is_set():
            self.entered.set()
            self.release.wait(timeout=10)
        return super().verify(stored_hash, secret)


async def test_argon2_work_beyond_its_budget_is_refused_at_once(tmp_path: Path) -> None:
    store = SwitchableKeyStore(SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}"))
    await store.start()
    hasher = HeldHasher()
    policy = AuthPolicy(max_concurrent_verifications=1, max_pending_verifications=1)
    world = build(store, Clock(), hasher, policy)
    try:
        first, second, third = [await world.issue() for _ in range(3)]
        hasher.hold.set()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(world.authenticator.authenticate, first.plaintext)
            await anyio.to_thread.run_sync(hasher.entered.wait, 10)  # in the only slot
            tasks.start_soon(world.authenticator.authenticate, second.plaintext)  # queued
            await anyio.wait_all_tasks_blocked()

            with anyio.fail_after(1), pytest.raises(VerificationBusy):
                await world.authenticator.authenticate(third.plaintext)
            hasher.release.set()
        assert (await world.authenticator.authenticate(third.plaintext)).key_id == (
            third.info.key_id
        )
    finally:
        hasher.release.set()
        await store.close()


async def test_a_revoked_or_expired_key_is_refused_without_argon2(world: World) -> None:
    revoked = await world.issue()
    await world.keys.revoke(revoked.info.key_id)
    expiring = await world.keys.create(user_id="ada", scope=Scope.READ, lifetime=timedelta(1))
    world.clock.advance(86_400)
    assert await reason_for(world, revoked.plaintext) is FailureReason.REVOKED
    assert await reason_for(world, expiring.plaintext) is FailureReason.EXPIRED
    assert world.verifications == 0


async def test_concurrent_first_uses_of_one_key_verify_it_once(world: World) -> None:
    issued = await world.issue()
    async with anyio.create_task_group() as tasks:
        for _ in range(10):
            tasks.start_soon(world.authenticator.authenticate, issued.plaintext)
    assert world.verifications == 1


async def test_the_cache_is_bounded_and_forgets_the_least_recently_used_key(
    world: World,
) -> None:
    issued = [await world.issue() for _ in range(4)]  # cache_size is 3
    for key in issued:
        await world.authenticator.authenticate(key.plaintext)
    await world.authenticator.authenticate(issued[0].plaintext)
    assert world.verifications == 5


async def test_a_key_hashed_with_old_parameters_is_rehashed_on_its_next_use(
    world: World,
) -> None:
    issued = await world.issue()
    stronger = Argon2KeyHasher(Argon2Parameters(time_cost=2, memory_cost_kib=2048))
    upgraded = build(world.store, world.clock, stronger, AuthPolicy())
    await upgraded.authenticator.authenticate(issued.plaintext)

    stored = await world.store.get(issued.info.key_id)
    assert stored is not None
    assert stored.api_key_hash != issued.info.api_key_hash
    assert not stronger.needs_rehash(stored.api_key_hash)
    assert stronger.verify(stored.api_key_hash, parse_key(issued.plaintext).secret)


async def test_last_use_is_gathered_in_memory_and_drained_in_one_batch(world: World) -> None:
    first, second = await world.issue(), await world.issue()
    await world.authenticator.authenticate(first.plaintext)
    world.clock.advance(5)
    await world.authenticator.authenticate(second.plaintext)
    await world.authenticator.authenticate(first.plaintext)

    usage = world.authenticator.drain_usage()
    assert usage == {first.info.key_id: world.clock.wall, second.info.key_id: world.clock.wall}
    assert world.authenticator.drain_usage() == {}
    await world.store.record_usage(usage)
    stored = await world.store.get(first.info.key_id)
    assert stored is not None
    assert stored.last_used_at == world.clock.wall


async def test_failures_sprayed_at_a_key_id_do_not_lock_out_a_holder_verified_before(
    world: World,
) -> None:
    issued = await world.issue()
    await world.authenticator.authenticate(issued.plaintext, "10.0.0.1")
    world.clock.advance(61)  # the cache entry lapses; the verified fingerprint remains
    wrong = PresentedKey(key_id=issued.info.key_id, secret=generate_key().secret).plaintext
    for _ in range(5):  # three wrong secrets, then throttled
        with pytest.raises((AuthenticationFailed, AuthThrottled)):
            await world.authenticator.authenticate(wrong, "10.0.0.1")

    principal = await world.authenticator.authenticate(issued.plaintext, "10.0.0.1")
    assert principal.key_id == issued.info.key_id
    assert world.verifications == 1 + 3  # no argon2 for the known key


async def test_the_throttle_is_per_client_address(world: World) -> None:
    issued = await world.issue()
    wrong = PresentedKey(key_id=issued.info.key_id, secret=generate_key().secret).plaintext
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await world.authenticator.authenticate(wrong, "203.0.113.9")
    await throttled(world, issued.plaintext, "203.0.113.9")

    principal = await world.authenticator.authenticate(issued.plaintext, "198.51.100.7")
    assert principal.key_id == issued.info.key_id
