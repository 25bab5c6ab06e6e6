"""API keys in ``domain.keys``: issuing a key record and rotating a key."""

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.keys import (
    ApiKeyInfo,
    KeyConflict,
    KeyLifecycleError,
    KeyStatus,
    Scope,
    new_key_info,
    parse_key,
    rotation_deadline,
)
from tests.unit.key_examples import DAY, GOLDEN, NOW, info


def test_a_new_key_record_lives_for_the_asked_lifetime() -> None:
    key = parse_key(GOLDEN)
    record = new_key_info(
        key=key,
        api_key_hash="hash",
        user_id="ada",
        name="ci",
        scope=Scope.READ,
        now=NOW,
        lifetime=30 * DAY,
        max_lifetime=365 * DAY,
    )
    assert record == ApiKeyInfo(
        key_id=key.key_id,
        api_key_hash="hash",
        user_id="ada",
        name="ci",
        scope=Scope.READ,
        created_at=NOW,
        expires_at=NOW + 30 * DAY,
    )
    assert record.status(NOW) is KeyStatus.ACTIVE


@pytest.mark.parametrize(
    ("lifetime", "message"),
    [
        pytest.param(timedelta(0), "must be positive", id="zero"),
        pytest.param(-DAY, "must be positive", id="negative"),
        pytest.param(365 * DAY + timedelta(seconds=1), "at most 365 days", id="over-maximum"),
    ],
)
def test_a_new_key_lifetime_must_be_positive_and_within_the_maximum(
    lifetime: timedelta, message: str
) -> None:
    with pytest.raises(KeyLifecycleError, match=message):
        new_key_info(
            key=parse_key(GOLDEN),
            api_key_hash="hash",
            user_id="ada",
            name="ci",
            scope=Scope.READ,
            now=NOW,
            lifetime=lifetime,
            max_lifetime=365 * DAY,
        )


def test_a_new_key_may_live_exactly_the_maximum() -> None:
    record = new_key_info(
        key=parse_key(GOLDEN),
        api_key_hash="hash",
        user_id="ada",
        name="ci",
        scope=Scope.ADMIN,
        now=NOW,
        lifetime=365 * DAY,
        max_lifetime=365 * DAY,
    )
    assert record.expires_at == NOW + 365 * DAY


@pytest.mark.parametrize(
    ("grace", "deadline"),
    [
        pytest.param(DAY, NOW + DAY, id="grace-within-lifetime"),
        pytest.param(timedelta(0), NOW, id="no-grace"),
        pytest.param(365 * DAY, NOW + 90 * DAY, id="never-extends"),
    ],
)
def test_a_rotated_key_stops_after_the_grace_period_but_never_later_than_before(
    grace: timedelta, deadline: datetime
) -> None:
    assert rotation_deadline(info(), now=NOW, grace=grace) == deadline


@given(
    lived=st.timedeltas(min_value=timedelta(0), max_value=90 * DAY - timedelta(microseconds=1)),
    grace=st.timedeltas(min_value=timedelta(0), max_value=400 * DAY),
)
def test_a_rotation_deadline_is_never_before_now_nor_after_the_old_expiry(
    lived: timedelta, grace: timedelta
) -> None:
    stored, now = info(), NOW + lived
    deadline = rotation_deadline(stored, now=now, grace=grace)
    assert now <= deadline <= stored.expires_at


def test_a_negative_grace_period_is_refused() -> None:
    with pytest.raises(KeyLifecycleError, match="must not be negative"):
        rotation_deadline(info(), now=NOW, grace=-timedelta(seconds=1))


@pytest.mark.parametrize(
    ("stored", "now", "message"),
    [
        pytest.param(info(revoked_at=NOW), NOW, "this one is revoked", id="revoked"),
        pytest.param(info(), NOW + 90 * DAY, "this one is expired", id="expired"),
        pytest.param(
            replace(info(), replaced_by="00000000000000aa"),
            NOW,
            "already rotated; its successor is 00000000000000aa",
            id="rotated",
        ),
    ],
)
def test_only_an_active_key_not_rotated_before_can_be_rotated(
    stored: ApiKeyInfo, now: datetime, message: str
) -> None:
    with pytest.raises(KeyConflict, match=message):
        rotation_deadline(stored, now=now, grace=DAY)
