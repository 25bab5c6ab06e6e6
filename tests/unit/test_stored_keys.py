"""API keys in ``domain.keys``: stored key records, their checks and their status."""

from datetime import timedelta, timezone

import pytest

from domain.keys import KeyStatus
from tests.unit.key_examples import DAY, NOW, info


def test_a_valid_stored_key_keeps_its_fields() -> None:
    stored = info(name="n" * 100, user_id="a" * 128, last_used_at=NOW, replaced_by="f" * 16)
    assert (stored.name, stored.user_id, stored.replaced_by) == ("n" * 100, "a" * 128, "f" * 16)
    for user_id in ("ada", "ada.lovelace@example.org", "svc:ci+deploy_1-2"):
        assert info(user_id=user_id).user_id == user_id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"key_id": "0123456789ABCDEF"}, "key id", id="uppercase-key-id"),
        pytest.param({"key_id": "0123456789abcde"}, "key id", id="short-key-id"),
        pytest.param({"key_id": "0123456789abcdef0"}, "key id", id="long-key-id"),
        pytest.param({"api_key_hash": ""}, "hash", id="no-hash"),
        pytest.param({"user_id": ""}, "user id", id="empty-user"),
        pytest.param({"user_id": "a" * 129}, "user id", id="long-user"),
        pytest.param({"user_id": "ada lovelace"}, "user id", id="space-in-user"),
        pytest.param({"name": "n" * 101}, "at most 100", id="long-name"),
        pytest.param({"created_at": NOW.replace(tzinfo=None)}, "created_at", id="naive-created"),
        pytest.param(
            {"expires_at": NOW.replace(tzinfo=None) + DAY}, "expires_at", id="naive-expires"
        ),
        pytest.param({"last_used_at": NOW.replace(tzinfo=None)}, "last_used_at", id="naive-used"),
        pytest.param({"revoked_at": NOW.replace(tzinfo=None)}, "revoked_at", id="naive-revoked"),
        pytest.param({"expires_at": NOW - DAY}, "expire before", id="expires-before-created"),
    ],
)
def test_an_invalid_stored_key_cannot_be_built(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        info(**changes)


def test_a_user_id_ending_in_a_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="user id"):
        info(user_id="ada\n")


def test_a_key_is_active_until_the_instant_it_expires() -> None:
    stored = info()
    assert stored.status(NOW) is KeyStatus.ACTIVE
    assert stored.status(stored.expires_at - timedelta(microseconds=1)) is KeyStatus.ACTIVE
    assert stored.status(stored.expires_at) is KeyStatus.EXPIRED
    assert stored.status(stored.expires_at + DAY) is KeyStatus.EXPIRED


def test_a_key_is_revoked_from_its_revocation_instant_and_revoked_beats_expired() -> None:
    revoked = info(revoked_at=NOW + DAY)
    assert revoked.status(NOW) is KeyStatus.ACTIVE
    assert revoked.status(NOW + DAY) is KeyStatus.REVOKED
    assert revoked.status(revoked.expires_at + DAY) is KeyStatus.REVOKED


def test_status_compares_instants_not_wall_clock_readings() -> None:
    east = timezone(timedelta(hours=2))
    stored = info()
    assert stored.status(stored.expires_at.astimezone(east)) is KeyStatus.EXPIRED


def test_a_key_that_expires_the_instant_it_was_made_is_never_active() -> None:
    # What rotating without grace in the instant of creation leaves behind.
    stored = info(expires_at=NOW)
    assert stored.status(NOW) is KeyStatus.EXPIRED
