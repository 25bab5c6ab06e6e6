"""``SqlKeyStore`` behaviour, the same against a SQLite file and a real PostgreSQL server."""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from domain.keys import ApiKeyInfo, KeyConflict, KeyNotFound, Scope
from domain.ports import DuplicateKeyId, KeyStore, KeyStoreUnavailable
from infrastructure.keystore.sql import SqlKeyStore
from tests.integration.keystore.stored_keys import EAST, NAIVE, NOW, key, opened

pytestmark = pytest.mark.anyio


async def test_the_sql_key_store_serves_as_the_key_store_port() -> None:
    key_store: KeyStore = SqlKeyStore("sqlite:///:memory:")
    await key_store.start()
    await key_store.ping()
    await key_store.close()


async def test_a_stored_key_reads_back_with_every_field_as_aware_utc(store: SqlKeyStore) -> None:
    successor = key(2)
    stored = ApiKeyInfo(
        key_id=key(1).key_id,
        api_key_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        user_id="ada.lovelace@example.org",
        name="laptop — ünïcode",
        scope=Scope.ADMIN,
        created_at=datetime(2025, 1, 1, 17, 30, 0, 1, tzinfo=EAST),
        expires_at=datetime(2025, 4, 1, 12, 0, tzinfo=UTC),
        last_used_at=datetime(2025, 2, 1, 8, 0, 0, 999999, tzinfo=EAST),
        revoked_at=datetime(2025, 3, 1, tzinfo=UTC),
        replaced_by=successor.key_id,
    )
    await store.add(successor)
    await store.add(stored)

    found = await store.get(stored.key_id)

    assert found == stored
    assert found is not None
    assert found.created_at == datetime(2025, 1, 1, 12, 0, 0, 1, tzinfo=UTC)
    moments = (found.created_at, found.expires_at, found.last_used_at, found.revoked_at)
    assert all(moment is not None and moment.tzinfo is UTC for moment in moments)
    assert type(found.scope) is Scope


async def test_an_unknown_key_id_reads_as_none(store: SqlKeyStore) -> None:
    await store.add(key(1))
    assert await store.get(key(2).key_id) is None


async def test_adding_a_key_id_twice_raises_duplicate_key_id_and_keeps_the_first(
    store: SqlKeyStore,
) -> None:
    first = key(1)
    await store.add(first)
    with pytest.raises(DuplicateKeyId) as caught:
        await store.add(replace(first, user_id="mallory", api_key_hash="other"))
    assert caught.value.key_id == first.key_id
    assert await store.get(first.key_id) == first


async def test_keys_are_listed_newest_first_and_filtered_by_user(store: SqlKeyStore) -> None:
    old = key(1, created_at=NOW - timedelta(days=2))
    tie_low, tie_high = key(2, created_at=NOW), key(3, created_at=NOW)
    newest_other_user = key(4, user_id="grace", created_at=NOW + timedelta(seconds=1))
    for info in (tie_low, old, newest_other_user, tie_high):
        await store.add(info)

    assert await store.list() == [newest_other_user, tie_high, tie_low, old]
    assert await store.list(user_id="ada") == [tie_high, tie_low, old]
    assert await store.list(user_id="nobody") == []


async def test_revoking_is_idempotent_and_keeps_the_first_instant(store: SqlKeyStore) -> None:
    info = key(1)
    await store.add(info)
    first = NOW + timedelta(hours=1)

    revoked = await store.revoke(info.key_id, first)
    again = await store.revoke(info.key_id, first + timedelta(hours=1))

    assert revoked == replace(info, revoked_at=first)
    assert again == revoked
    assert await store.get(info.key_id) == revoked


async def test_revoking_an_unknown_key_returns_none_and_stores_nothing(store: SqlKeyStore) -> None:
    assert await store.revoke(key(1).key_id, NOW) is None
    assert await store.list() == []


async def test_rotating_adds_the_new_key_and_shortens_and_links_the_old_one(
    store: SqlKeyStore,
) -> None:
    old, new = key(1), key(2, created_at=NOW + timedelta(days=1))
    await store.add(old)
    deadline = NOW + timedelta(days=2)

    await store.rotate(old.key_id, new, deadline)

    assert await store.get(new.key_id) == new
    assert await store.get(old.key_id) == replace(old, expires_at=deadline, replaced_by=new.key_id)


async def test_a_rotation_whose_new_key_id_exists_changes_nothing(store: SqlKeyStore) -> None:
    old, taken = key(1), key(2, user_id="grace")
    await store.add(old)
    await store.add(taken)

    with pytest.raises(DuplicateKeyId):
        await store.rotate(old.key_id, replace(taken, user_id="ada"), NOW + timedelta(days=1))

    assert await store.get(old.key_id) == old
    assert await store.get(taken.key_id) == taken


async def test_rotating_an_unknown_key_raises_key_not_found_and_adds_nothing(
    store: SqlKeyStore,
) -> None:
    with pytest.raises(KeyNotFound) as caught:
        await store.rotate(key(1).key_id, key(2), NOW + timedelta(days=1))
    assert caught.value.key_id == key(1).key_id
    assert await store.list() == []


async def test_rotating_a_key_revoked_since_it_was_read_changes_nothing(
    store: SqlKeyStore,
) -> None:
    await store.add(key(1))
    revoked = await store.revoke(key(1).key_id, NOW)

    with pytest.raises(KeyConflict, match="is revoked"):
        await store.rotate(key(1).key_id, key(2), NOW + timedelta(days=1))

    assert await store.list() == [revoked]


async def test_rotating_a_key_rotated_since_it_was_read_changes_nothing(
    store: SqlKeyStore,
) -> None:
    """Two concurrent rotations of one key: the store lets only the first one through."""
    await store.add(key(1))
    await store.rotate(key(1).key_id, key(2), NOW + timedelta(days=1))
    before = await store.list()

    with pytest.raises(KeyConflict, match=f"its successor is {key(2).key_id}"):
        await store.rotate(key(1).key_id, key(3), NOW + timedelta(days=2))

    assert await store.list() == before


async def test_updating_a_hash_changes_only_that_key(store: SqlKeyStore) -> None:
    first, second = key(1), key(2)
    await store.add(first)
    await store.add(second)

    await store.update_hash(first.key_id, "$argon2id$v=19$m=19456,t=2,p=1$new")
    await store.update_hash(key(3).key_id, "ignored")

    assert await store.get(first.key_id) == replace(
        first, api_key_hash="$argon2id$v=19$m=19456,t=2,p=1$new"
    )
    assert await store.get(second.key_id) == second
    assert await store.get(key(3).key_id) is None


async def test_recording_usage_sets_last_use_for_several_keys_at_once(store: SqlKeyStore) -> None:
    keys = [key(number) for number in range(1, 5)]
    for info in keys:
        await store.add(info)
    used = {info.key_id: NOW + timedelta(minutes=number) for number, info in enumerate(keys[:3])}
    used[key(9).key_id] = NOW

    await store.record_usage(used)
    await store.record_usage({})

    found = {info.key_id: info.last_used_at for info in await store.list()}
    del used[key(9).key_id]
    assert found == {**used, keys[3].key_id: None}
    assert await store.get(key(9).key_id) is None


async def test_recording_usage_never_moves_last_use_backwards(store: SqlKeyStore) -> None:
    first, second = key(1), key(2)
    await store.add(first)
    await store.add(second)
    later = NOW + timedelta(minutes=5)
    await store.record_usage({first.key_id: later, second.key_id: later})

    await store.record_usage(
        {first.key_id: NOW, second.key_id: (later + timedelta(minutes=1)).astimezone(EAST)}
    )

    assert (await store.get(first.key_id)) == replace(first, last_used_at=later)
    assert (await store.get(second.key_id)) == replace(
        second, last_used_at=later + timedelta(minutes=1)
    )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda store: store.revoke(key(1).key_id, NAIVE), id="revoke"),
        pytest.param(lambda store: store.rotate(key(1).key_id, key(2), NAIVE), id="rotate"),
        pytest.param(
            lambda store: store.record_usage({key(1).key_id: NAIVE}),
            id="record_usage",
        ),
    ],
)
async def test_a_naive_instant_is_refused_before_anything_is_written(
    store: SqlKeyStore, call: Callable[[SqlKeyStore], Awaitable[object]]
) -> None:
    await store.add(key(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        await call(store)
    assert await store.list() == [key(1)]


async def test_a_started_store_answers_a_ping(store: SqlKeyStore) -> None:
    await store.ping()


async def test_a_key_cannot_name_a_replacement_that_is_not_stored(store: SqlKeyStore) -> None:
    with pytest.raises(KeyStoreUnavailable, match="cannot add a key"):
        await store.add(replace(key(1), replaced_by=key(2).key_id))
    assert await store.list() == []


async def test_a_cancelled_call_still_completes_and_closing_waits_for_it(
    database_url: str,
) -> None:
    key_store = SqlKeyStore(database_url)
    await key_store.start()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await key_store.add(key(1))
    await key_store.close()
    assert scope.cancelled_caught

    async with opened(database_url) as reopened:
        assert await reopened.get(key(1).key_id) == key(1)
