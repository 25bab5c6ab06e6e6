"""The key service against a real SQLite key store and real (cheap) argon2, time driven."""

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest
import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

import app.services.keys as key_service
from app.services.authenticator import AuthenticationFailed, Authenticator, FailureReason
from app.services.keys import IssuedKey, KeyLifetimes, KeyService
from domain.keys import (
    KeyConflict,
    KeyLifecycleError,
    KeyNotFound,
    Principal,
    Scope,
    ScopeNotGrantable,
)
from infrastructure.hashing import Argon2KeyHasher, Argon2Parameters
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.metrics import Metrics
from tests.fakes import START, Clock, SwitchableKeyStore

pytestmark = pytest.mark.anyio
CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=1024, parallelism=1)
UNKNOWN_ID = "0123456789abcdef"
GRANTER_ID = "feedfacecafebeef"


class RecordingKeyStore(SwitchableKeyStore):
    """The switchable store, keeping every usage batch it is asked to write."""

    def __init__(self, inner: SqlKeyStore) -> None:
        super().__init__(inner)
        self.usage_batches: list[dict[str, datetime]] = []
        self.usage_written = anyio.Event()

    async def record_usage(self, last_used: Mapping[str, datetime]) -> None:
        self.usage_batches.append(dict(last_used))
        await super().record_usage(last_used)
        self.usage_written.set()


@dataclass
class World:
    store: RecordingKeyStore
    authenticator: Authenticator
    keys: KeyService
    clock: Clock = field(default_factory=Clock)

    async def issue(self, scope: Scope = Scope.READ, name: str = "") -> IssuedKey:
        return await self.keys.create(user_id="ada", scope=scope, name=name)

    async def reason_for(self, plaintext: str) -> FailureReason:
        with anyio.fail_after(10), pytest.raises(AuthenticationFailed) as failed:
            await self.authenticator.authenticate(plaintext)
        return failed.value.reason

    async def key_id_of(self, plaintext: str) -> str:
        with anyio.fail_after(10):
            return (await self.authenticator.authenticate(plaintext)).key_id


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = RecordingKeyStore(SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}"))
    await store.start()
    clock, hasher, metrics = Clock(), Argon2KeyHasher(CHEAP), Metrics(version="test")
    authenticator = Authenticator(
        store, hasher, metrics=metrics, now=lambda: clock.wall, clock=lambda: clock.mono
    )
    lifetimes = KeyLifetimes(default=timedelta(days=90), maximum=timedelta(days=365))
    keys = KeyService(store, hasher, lifetimes, authenticator=authenticator, now=lambda: clock.wall)
    yield World(store, authenticator, keys, clock)
    await store.close()


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EventDict]]:
    """Every event the key service logs during the test.

    Its loggers are fetched afresh: ``configure_logging`` caches a logger on first use, and
    one cached during an earlier test writes past ``capture_logs``.
    """
    monkeypatch.setattr(key_service, "audit", structlog.get_logger("ctxfy.audit"))
    monkeypatch.setattr(key_service, "logger", structlog.get_logger(key_service.__name__))
    with capture_logs() as entries:
        yield entries


def audited(logs: list[EventDict], event: str) -> list[tuple[object, object]]:
    """``(actor, key_id)`` of every ``event`` logged as an audit record."""
    return [(e["actor"], e.get("key_id")) for e in logs if e["event"] == event and e["audit"]]


async def test_creating_a_key_issues_a_plaintext_that_authenticates_as_its_record_says(
    world: World,
) -> None:
    issued = await world.issue(Scope.WRITE, name="ci pipeline")

    info = issued.info
    assert (info.user_id, info.scope, info.name) == ("ada", Scope.WRITE, "ci pipeline")
    assert (info.created_at, info.expires_at) == (START, START + timedelta(days=90))
    assert await world.keys.get(info.key_id) == info
    principal = await world.authenticator.authenticate(issued.plaintext)
    assert principal == Principal(key_id=info.key_id, user_id="ada", scope=Scope.WRITE)


async def test_creating_a_key_is_audited_with_the_granting_key_as_actor(
    world: World, logs: list[EventDict]
) -> None:
    admin = Principal(key_id=GRANTER_ID, user_id="root", scope=Scope.ADMIN)
    by_operator = await world.issue()
    by_key = await world.keys.create(user_id="bob", scope=Scope.ADMIN, granter=admin)

    assert audited(logs, "key_created") == [
        ("cli", by_operator.info.key_id),
        (GRANTER_ID, by_key.info.key_id),
    ]
    assert (logs[-1]["user_id"], logs[-1]["scope"]) == ("bob", "admin")


@pytest.mark.parametrize(
    ("granter_scope", "wanted"),
    [(Scope.READ, Scope.WRITE), (Scope.READ, Scope.ADMIN), (Scope.WRITE, Scope.ADMIN)],
)
async def test_a_granter_cannot_mint_a_key_broader_than_itself_and_nothing_is_stored(
    world: World, logs: list[EventDict], granter_scope: Scope, wanted: Scope
) -> None:
    granter = Principal(key_id=GRANTER_ID, user_id="ada", scope=granter_scope)
    with pytest.raises(ScopeNotGrantable) as refused:
        await world.keys.create(user_id="ada", scope=wanted, granter=granter)

    assert refused.value.scope is wanted
    assert await world.keys.list() == []
    assert audited(logs, "key_create_refused") == [(GRANTER_ID, None)]
    assert audited(logs, "key_created") == []


@pytest.mark.parametrize(
    "lifetime",
    [timedelta(days=365, seconds=1), timedelta(0), timedelta(seconds=-1)],
    ids=["over-the-maximum", "zero", "negative"],
)
async def test_a_lifetime_that_is_not_positive_or_over_the_maximum_is_refused(
    world: World, lifetime: timedelta
) -> None:
    with pytest.raises(KeyLifecycleError):
        await world.keys.create(user_id="ada", scope=Scope.READ, lifetime=lifetime)
    assert await world.keys.list() == []


async def test_revoking_a_key_makes_it_fail_authentication_at_once_in_this_process(
    world: World, logs: list[EventDict]
) -> None:
    issued = await world.issue()
    await world.key_id_of(issued.plaintext)  # now cached
    revoked = await world.keys.revoke(issued.info.key_id)

    assert revoked.revoked_at == START
    assert await world.reason_for(issued.plaintext) is FailureReason.REVOKED
    assert audited(logs, "key_revoked") == [("cli", issued.info.key_id)]


async def test_revoking_again_keeps_the_first_revocation_instant(world: World) -> None:
    issued = await world.issue()
    await world.keys.revoke(issued.info.key_id)
    world.clock.advance(3600)
    assert (await world.keys.revoke(issued.info.key_id)).revoked_at == START


async def test_revoking_getting_or_rotating_an_unknown_key_raises_key_not_found(
    world: World, logs: list[EventDict]
) -> None:
    for operation in (world.keys.revoke, world.keys.get, world.keys.rotate):
        with pytest.raises(KeyNotFound) as missing:
            await operation(UNKNOWN_ID)
        assert missing.value.key_id == UNKNOWN_ID
    assert logs == []


async def test_rotating_issues_a_successor_with_the_same_owner_scope_and_name(
    world: World, logs: list[EventDict]
) -> None:
    old = await world.issue(Scope.WRITE, name="deploy bot")
    world.clock.advance(86_400)
    new = await world.keys.rotate(old.info.key_id, grace=timedelta(hours=1))

    assert (new.info.user_id, new.info.scope, new.info.name) == ("ada", Scope.WRITE, "deploy bot")
    assert new.info.key_id != old.info.key_id
    assert new.info.expires_at == world.clock.wall + timedelta(days=90)
    stored_old = await world.keys.get(old.info.key_id)
    assert stored_old.replaced_by == new.info.key_id
    assert stored_old.expires_at == world.clock.wall + timedelta(hours=1)
    assert await world.key_id_of(new.plaintext) == new.info.key_id
    assert audited(logs, "key_rotated") == [("cli", old.info.key_id)]
    assert logs[-1]["new_key_id"] == new.info.key_id


async def test_a_rotated_key_works_through_the_grace_period_and_not_after(world: World) -> None:
    old = await world.issue()
    await world.key_id_of(old.plaintext)
    new = await world.keys.rotate(old.info.key_id, grace=timedelta(minutes=10))

    world.clock.advance(599)
    assert await world.key_id_of(old.plaintext) == old.info.key_id
    world.clock.advance(1)
    assert await world.reason_for(old.plaintext) is FailureReason.EXPIRED
    assert await world.key_id_of(new.plaintext) == new.info.key_id


async def test_rotating_without_grace_ends_the_old_key_at_once_even_when_cached(
    world: World,
) -> None:
    old = await world.issue()
    world.clock.advance(1)
    await world.key_id_of(old.plaintext)
    await world.keys.rotate(old.info.key_id)
    assert await world.reason_for(old.plaintext) is FailureReason.EXPIRED


async def test_a_key_rotated_without_grace_in_the_instant_it_was_made_stays_readable(
    world: World,
) -> None:
    old = await world.issue()
    new = await world.keys.rotate(old.info.key_id)  # the clock has not moved: now == created_at

    listed = {info.key_id for info in await world.keys.list()}
    assert listed == {old.info.key_id, new.info.key_id}
    assert await world.reason_for(old.plaintext) is FailureReason.EXPIRED


async def test_a_revoked_key_cannot_be_rotated_and_no_successor_is_stored(world: World) -> None:
    old = await world.issue()
    await world.keys.revoke(old.info.key_id)
    with pytest.raises(KeyConflict):
        await world.keys.rotate(old.info.key_id)
    assert [info.key_id for info in await world.keys.list()] == [old.info.key_id]


async def test_flushing_writes_the_last_use_of_keys_that_authenticated_in_one_batch(
    world: World,
) -> None:
    used, idle = await world.issue(), await world.issue()
    world.clock.advance(30)
    await world.key_id_of(used.plaintext)

    await world.keys.flush_usage()

    assert world.store.usage_batches == [{used.info.key_id: world.clock.wall}]
    assert (await world.keys.get(used.info.key_id)).last_used_at == world.clock.wall
    assert (await world.keys.get(idle.info.key_id)).last_used_at is None


async def test_flushing_when_no_key_authenticated_writes_nothing(
    world: World, logs: list[EventDict]
) -> None:
    await world.issue()
    world.store.down = True  # a write would fail and be logged; there must be none
    await world.keys.flush_usage()
    assert world.store.usage_batches == []
    assert [e["event"] for e in logs] == ["key_created"]


async def test_usage_the_store_could_not_take_is_written_on_the_next_flush(
    world: World, logs: list[EventDict]
) -> None:
    issued = await world.issue()
    await world.key_id_of(issued.plaintext)
    world.store.down = True
    await world.keys.flush_usage()
    assert [e["keys"] for e in logs if e["event"] == "key_usage_not_recorded"] == [1]

    world.store.down = False
    await world.keys.flush_usage()
    assert (await world.keys.get(issued.info.key_id)).last_used_at == START


async def test_the_background_flush_writes_usage_without_being_asked(world: World) -> None:
    issued = await world.issue()
    await world.key_id_of(issued.plaintext)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(world.keys.flush_usage_every, 0)
            await world.store.usage_written.wait()
            tasks.cancel_scope.cancel()
    assert (await world.keys.get(issued.info.key_id)).last_used_at == START
