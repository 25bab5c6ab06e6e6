"""API keys in ``domain.keys``: their format and checksum."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.keys import (
    ALPHABET,
    CHECKSUM_LENGTH,
    KEY_ID_LENGTH,
    KEY_LENGTH,
    PREFIX,
    SECRET_LENGTH,
    MalformedKey,
    PresentedKey,
    generate_key,
    parse_key,
)
from tests.unit.key_examples import GOLDEN

key_ids = st.text(alphabet="0123456789abcdef", min_size=KEY_ID_LENGTH, max_size=KEY_ID_LENGTH)
secret_texts = st.text(alphabet=ALPHABET, min_size=SECRET_LENGTH, max_size=SECRET_LENGTH)
presented_keys = st.builds(PresentedKey, key_id=key_ids, secret=secret_texts)
# Key characters and their neighbours are where a checksum has to earn its keep.
characters = st.one_of(st.sampled_from(ALPHABET + "_-. "), st.characters())


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
