"""API keys in ``domain.keys``: format, checksum, scopes and lifecycle."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import CtxfyError
from domain.keys import (
    ALPHABET,
    CHECKSUM_LENGTH,
    KEY_ID_LENGTH,
    KEY_LENGTH,
    PREFIX,
    SECRET_LENGTH,
    ApiKeyInfo,
    KeyLifecycleError,
    KeyNotFound,
    KeyStatus,
    MalformedKey,
    PresentedKey,
    Principal,
    Scope,
    ScopeNotGrantable,
    generate_key,
    may_grant,
    new_key_info,
    parse_key,
    rotation_deadline,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
GOLDEN = "ctxfy_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2iI5Et"

key_ids = st.text(alphabet="0123456789abcdef", min_size=KEY_ID_LENGTH, max_size=KEY_ID_LENGTH)
secret_texts = st.text(alphabet=ALPHABET, min_size=SECRET_LENGTH, max_size=SECRET_LENGTH)
presented_keys = st.builds(PresentedKey, key_id=key_ids, secret=secret_texts)
# Key characters and their neighbours are where a checksum has to earn its keep.
characters = st.one_of(st.sampled_from(ALPHABET + "_-. "), st.characters())


def info(**changes: object) -> ApiKeyInfo:
    fields: dict[str, object] = {
        "key_id": "0123456789abcdef",
        "api_key_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "user_id": "ada",
        "name": "laptop",
        "scope": Scope.WRITE,
        "created_at": NOW,
        "expires_at": NOW + 90 * DAY,
    }
    fields.update(changes)
    return ApiKeyInfo(**fields)  # type: ignore[arg-type]


def principal(scope: Scope) -> Principal:
    return Principal(key_id="0123456789abcdef", user_id="ada", scope=scope)


# Format and checksum


@given(presented_keys)
def test_every_well_formed_key_parses_back_to_itself(key: PresentedKey) -> None:
    text = key.plaintext
    assert len(text) == KEY_LENGTH
    assert text.startswith(PREFIX)
    assert parse_key(text) == key


def test_generated_keys_are_well_formed_distinct_and_parse_back() -> None:
    keys = [generate_key() for _ in range(50)]
    assert len({key.key_id for key in keys}) == len({key.secret for key in keys}) == 50
    for key in keys:
        assert len(key.key_id) == KEY_ID_LENGTH
        assert set(key.key_id) <= set("0123456789abcdef")
        assert len(key.secret) == SECRET_LENGTH
        assert set(key.secret) <= set(ALPHABET)
        assert parse_key(key.plaintext) == key


def test_a_key_issued_in_this_format_keeps_its_checksum() -> None:
    assert PresentedKey(key_id="0123456789abcdef", secret="A" * SECRET_LENGTH).plaintext == GOLDEN
    assert parse_key(GOLDEN).key_id == "0123456789abcdef"


@given(presented_keys, st.data())
def test_substituting_any_one_character_is_rejected(key: PresentedKey, data: st.DataObject) -> None:
    text = key.plaintext
    position = data.draw(st.integers(0, len(text) - 1), label="position")
    other = data.draw(characters.filter(lambda c: c != text[position]), label="character")
    with pytest.raises(MalformedKey):
        parse_key(text[:position] + other + text[position + 1 :])


@given(presented_keys, st.data())
def test_deleting_any_one_character_is_rejected(key: PresentedKey, data: st.DataObject) -> None:
    text = key.plaintext
    position = data.draw(st.integers(0, len(text) - 1), label="position")
    with pytest.raises(MalformedKey):
        parse_key(text[:position] + text[position + 1 :])


@given(presented_keys, st.data())
def test_inserting_any_one_character_is_rejected(key: PresentedKey, data: st.DataObject) -> None:
    text = key.plaintext
    position = data.draw(st.integers(0, len(text)), label="position")
    extra = data.draw(characters, label="character")
    with pytest.raises(MalformedKey):
        parse_key(text[:position] + extra + text[position:])


@given(presented_keys, st.data())
def test_swapping_two_adjacent_different_characters_of_the_body_is_rejected(
    key: PresentedKey, data: st.DataObject
) -> None:
    text = key.plaintext
    body_end = len(text) - CHECKSUM_LENGTH
    position = data.draw(st.integers(0, body_end - 2), label="position")
    swapped = text[:position] + text[position + 1] + text[position] + text[position + 2 :]
    if swapped != text:
        with pytest.raises(MalformedKey):
            parse_key(swapped)


def test_every_substitution_of_a_fixed_key_is_rejected() -> None:
    """The property above, exhaustively over one key and the characters a key can hold."""
    accepted = [
        (position, other)
        for position in range(KEY_LENGTH)
        for other in ALPHABET + "_"
        if other != GOLDEN[position] and _parses(GOLDEN[:position] + other + GOLDEN[position + 1 :])
    ]
    assert accepted == []


def _parses(text: str) -> bool:
    try:
        parse_key(text)
    except MalformedKey:
        return False
    return True


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "wrong length", id="empty"),
        pytest.param(GOLDEN[:-1], "wrong length", id="truncated"),
        pytest.param(GOLDEN + "A", "wrong length", id="too-long"),
        pytest.param(" " + GOLDEN[:-1], "wrong shape", id="leading-space"),
        pytest.param("CTXFY_" + GOLDEN[6:], "wrong shape", id="uppercase-prefix"),
        pytest.param("ctxfy-" + GOLDEN[6:], "wrong shape", id="dash-prefix"),
        pytest.param("sk_abc" + GOLDEN[6:], "wrong shape", id="other-prefix"),
        pytest.param(GOLDEN.replace("abcdef_", "ABCDEF_"), "wrong shape", id="uppercase-key-id"),
        pytest.param(GOLDEN.replace("abcdef_", "abcdefA"), "wrong shape", id="no-separator"),
        pytest.param(GOLDEN.replace("AAAA", "AA-A", 1), "wrong shape", id="dash-in-secret"),
        pytest.param(GOLDEN.replace("AAAA", "AAéA", 1), "wrong shape", id="non-ascii-secret"),
        pytest.param(GOLDEN.replace("0123", "０123"), "wrong shape", id="fullwidth-digit"),
        pytest.param(GOLDEN[:-1] + "u", "bad checksum", id="bad-checksum"),
    ],
)
def test_a_key_of_the_wrong_shape_is_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(MalformedKey, match=reason):
        parse_key(text)


def test_a_presented_key_never_shows_its_secret() -> None:
    key = parse_key(GOLDEN)
    for shown in (repr(key), str(key), f"{key}", f"{key!r}", repr([key])):
        assert key.secret not in shown
        assert "***" in shown
        assert "0123456789abcdef" in shown


# Scopes and principals


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (Scope.READ, Scope.READ, True),
        (Scope.READ, Scope.WRITE, False),
        (Scope.READ, Scope.ADMIN, False),
        (Scope.WRITE, Scope.READ, True),
        (Scope.WRITE, Scope.WRITE, True),
        (Scope.WRITE, Scope.ADMIN, False),
        (Scope.ADMIN, Scope.READ, True),
        (Scope.ADMIN, Scope.WRITE, True),
        (Scope.ADMIN, Scope.ADMIN, True),
    ],
)
def test_a_scope_includes_itself_and_the_scopes_below_it(
    held: Scope, needed: Scope, allowed: bool
) -> None:
    assert held.includes(needed) is allowed
    assert principal(held).may(needed) is allowed
    assert may_grant(principal(held), needed) is allowed


def test_scopes_rank_read_below_write_below_admin() -> None:
    assert [scope.rank for scope in (Scope.READ, Scope.WRITE, Scope.ADMIN)] == [0, 1, 2]
    assert [Scope(value) for value in ("read", "write", "admin")] == list(Scope)


def test_a_scope_grants_itself_and_every_scope_below_it_narrowest_first() -> None:
    assert Scope.READ.granted() == (Scope.READ,)
    assert Scope.WRITE.granted() == (Scope.READ, Scope.WRITE)
    assert Scope.ADMIN.granted() == (Scope.READ, Scope.WRITE, Scope.ADMIN)


def test_key_errors_name_the_key_or_the_scope_they_are_about() -> None:
    missing = KeyNotFound("0123456789abcdef")
    assert (missing.key_id, str(missing)) == (
        "0123456789abcdef",
        "No key with id '0123456789abcdef'",
    )
    refused = ScopeNotGrantable(Scope.ADMIN)
    assert refused.scope is Scope.ADMIN
    assert "'admin'" in str(refused)
    assert isinstance(missing, CtxfyError)
    assert isinstance(refused, CtxfyError)


@pytest.mark.parametrize("scope", list(Scope))
def test_the_operator_cli_may_grant_any_scope(scope: Scope) -> None:
    assert may_grant(None, scope)


# Stored keys


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
        pytest.param({"expires_at": NOW}, "expire after", id="expires-when-created"),
        pytest.param({"expires_at": NOW - DAY}, "expire after", id="expires-before-created"),
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


# Issuing and rotating


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


@pytest.mark.parametrize(
    ("stored", "now", "grace", "message"),
    [
        pytest.param(info(), NOW, -timedelta(seconds=1), "must not be negative", id="negative"),
        pytest.param(info(revoked_at=NOW), NOW, DAY, "this one is revoked", id="revoked"),
        pytest.param(info(), NOW + 90 * DAY, DAY, "this one is expired", id="expired"),
    ],
)
def test_only_an_active_key_with_a_non_negative_grace_can_be_rotated(
    stored: ApiKeyInfo, now: datetime, grace: timedelta, message: str
) -> None:
    with pytest.raises(KeyLifecycleError, match=message):
        rotation_deadline(stored, now=now, grace=grace)
