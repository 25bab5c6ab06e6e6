"""``ctxfy keys``: a fresh install gets its first keys from the CLI, never a back door."""

from datetime import UTC, datetime, timedelta

import anyio
import pytest
import typer
from typer.testing import CliRunner

from app.cli import cli, parse_duration
from app.settings import Settings
from domain.keys import LIFETIME_NOT_POSITIVE, ApiKeyInfo, Scope, generate_key, parse_key
from infrastructure.keystore.sql import SqlKeyStore

runner = CliRunner()


def create(*args: str) -> str:
    result = runner.invoke(cli, ["keys", "create", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_create_prints_the_key_alone_on_stdout_for_scripts() -> None:
    stdout = create("--user", "ada@example.com", "--scope", "admin", "--name", "bootstrap")
    (line,) = stdout.splitlines()
    assert parse_key(line).key_id in line


def test_list_shows_keys_without_secrets() -> None:
    key = create("--user", "ada", "--scope", "read").strip()
    result = runner.invoke(cli, ["keys", "list"])
    assert result.exit_code == 0, result.output
    assert parse_key(key).key_id in result.stdout
    assert key not in result.output
    assert parse_key(key).secret not in result.output
    assert "active" in result.stdout


def test_revoke_marks_the_key_revoked() -> None:
    key_id = parse_key(create("--user", "ada", "--scope", "read").strip()).key_id
    revoked = runner.invoke(cli, ["keys", "revoke", key_id])
    listed = runner.invoke(cli, ["keys", "list", "--user", "ada"])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in listed.stdout


def test_rotate_prints_a_new_key_and_names_the_replacement() -> None:
    old = parse_key(create("--user", "ada", "--scope", "write").strip())
    result = runner.invoke(cli, ["keys", "rotate", old.key_id, "--grace", "1h"])
    assert result.exit_code == 0, result.output
    new = parse_key(result.stdout.strip())
    assert new.key_id != old.key_id
    assert f"rotated {old.key_id} -> {new.key_id}" in result.stderr


def test_revoking_an_unknown_key_fails_plainly() -> None:
    result = runner.invoke(cli, ["keys", "revoke", "0123456789abcdef"])
    assert result.exit_code == 1
    assert "No key with id '0123456789abcdef'" in result.stderr


def test_a_lifetime_over_the_maximum_is_refused() -> None:
    result = runner.invoke(
        cli, ["keys", "create", "--user", "ada", "--scope", "read", "--expires-in", "400d"]
    )
    assert result.exit_code == 1
    assert "at most 365 days" in result.stderr


def test_an_invalid_user_id_is_refused_before_touching_the_store() -> None:
    result = runner.invoke(cli, ["keys", "create", "--user", "ada lovelace", "--scope", "read"])
    assert result.exit_code == 2


def test_an_unreachable_key_store_is_reported_with_its_own_exit_code() -> None:
    result = runner.invoke(
        cli,
        ["keys", "list"],
        env={"CTXFY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert result.exit_code == 3
    assert "key store unavailable" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86_400), ("12h", 43_200), ("30m", 1_800), ("45s", 45), (" 1h ", 3_600)],
)
def test_durations_read_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "90", "1w", "-1d", "1.5h", "d"])
def test_durations_without_a_known_unit_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="use a number and a unit"):
        parse_duration(text)


def test_create_refuses_a_name_with_a_bidi_override() -> None:
    result = runner.invoke(
        cli, ["keys", "create", "--user", "ada", "--scope", "read", "--name", "evil\u202etxt"]
    )
    assert result.exit_code == 1
    assert "bidirectional" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("zero", ["0d", "0", "00h", "0s"])
def test_create_refuses_a_zero_lifetime_instead_of_using_the_default(zero: str) -> None:
    result = runner.invoke(
        cli, ["keys", "create", "--user", "ada", "--scope", "read", "--expires-in", zero]
    )
    assert result.exit_code == 2  # a usage error, before any store is opened
    assert LIFETIME_NOT_POSITIVE in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_list_escapes_a_stored_name_that_would_print_as_something_else() -> None:
    stored = generate_key()
    now = datetime.now(UTC)

    async def store_old_row() -> None:
        store = SqlKeyStore(Settings().database_url.get_secret_value())
        await store.start()
        try:
            await store.add(
                ApiKeyInfo(
                    key_id=stored.key_id,
                    api_key_hash="$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA",
                    user_id="ada",
                    name="evil\u202etxt\x1b[31m",  # written before names were checked
                    scope=Scope.READ,
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                )
            )
        finally:
            await store.close()

    anyio.run(store_old_row)
    listed = runner.invoke(cli, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert "evil\\u202etxt\\x1b[31m" in listed.stdout
    assert "\u202e" not in listed.stdout
