"""``ctxfy generations``: an operator lists, reads and purges generation records from the
configured database, without a running server."""

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from domain.generation_records import GenerationOutcome, GenerationRecord, new_record_id
from infrastructure.keystore.records import SqlGenerationRecords
from infrastructure.keystore.sql import SqlKeyStore
from tests.records_helpers import a_record

runner = CliRunner()
NOW = datetime.now(UTC)


def record(
    user_id: str = "ada",
    *,
    prompt: str = "context_stack",
    age: timedelta = timedelta(minutes=1),
    failure: str | None = None,
    document: str | None = "# The document",
) -> GenerationRecord:
    return a_record(
        created_at=NOW - age,
        user_id=user_id,
        prompt=prompt,
        outcome=GenerationOutcome.ERROR if failure else GenerationOutcome.OK,
        failure=failure,
        document=None if failure else document,
    )


def stored(*records: GenerationRecord) -> Sequence[GenerationRecord]:
    """``records``, written to the database the CLI's settings name."""

    async def write() -> None:
        store = SqlKeyStore(Settings().database_url.get_secret_value())
        await store.start()
        try:
            for each in records:
                await SqlGenerationRecords(store).add(each)
        finally:
            await store.close()

    anyio.run(write)
    return records


def ids_in(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()[1:]]


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["generations", *args])
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_every_users_records_newest_first_without_content() -> None:
    old, new = stored(record("ada", age=timedelta(hours=2)), record("bob"))
    code, stdout, _ = invoke("list")

    assert code == 0
    assert ids_in(stdout) == [new.record_id, old.record_id]
    assert "context_stack@1.0.0" in stdout
    assert "# The document" not in stdout
    assert "Rotate" not in stdout


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--user", "bob"], lambda r: r.user_id == "bob"),
        (["--prompt", "prd"], lambda r: r.prompt == "prd"),
        (["--outcome", "error"], lambda r: r.outcome is GenerationOutcome.ERROR),
    ],
    ids=["user", "prompt", "outcome"],
)
def test_list_filters_by_user_prompt_and_outcome(
    options: list[str], expected: Callable[[GenerationRecord], bool]
) -> None:
    records = stored(
        record("ada", age=timedelta(minutes=3)),
        record("bob", age=timedelta(minutes=2)),
        record("ada", prompt="prd", failure="llm_timeout"),
    )
    code, stdout, _ = invoke("list", *options)

    assert code == 0
    wanted = [r.record_id for r in reversed(records) if expected(r)]
    assert wanted
    assert ids_in(stdout) == wanted


def test_list_pages_with_limit_and_before() -> None:
    records = stored(*(record(age=timedelta(minutes=n)) for n in range(5)))
    newest_first = [r.record_id for r in records]

    _, first, _ = invoke("list", "--limit", "2")
    _, second, _ = invoke("list", "--limit", "2", "--before", ids_in(first)[-1])

    assert ids_in(first) + ids_in(second) == newest_first[:4]


def test_list_refuses_a_limit_above_one_page() -> None:
    code, _, stderr = invoke("list", "--limit", "101")
    assert code == 2
    assert "--limit" in stderr


def test_show_prints_the_record_as_json_with_its_document() -> None:
    (kept,) = stored(record())
    code, stdout, _ = invoke("show", kept.record_id)

    assert code == 0
    shown = json.loads(stdout)
    assert shown["generation_id"] == kept.record_id
    assert (shown["user_id"], shown["outcome"], shown["model"]) == ("ada", "ok", "gpt-test")
    assert shown["document"] == "# The document"
    assert shown["arguments"] == {"task": "Rotate the signing keys."}
    assert datetime.fromisoformat(shown["created_at"]) == kept.created_at


def test_show_of_an_unknown_id_fails_with_exit_1() -> None:
    unknown = new_record_id(NOW)
    code, stdout, stderr = invoke("show", unknown)
    assert (code, stdout) == (1, "")
    assert f"no generation record {unknown}" in stderr


def test_show_of_something_that_is_no_id_is_a_usage_error() -> None:
    code, _, stderr = invoke("show", "../etc/passwd")
    assert code == 2
    assert "not a generation id" in stderr


def test_purge_deletes_records_older_than_the_duration_and_says_how_many() -> None:
    old, older, recent = stored(
        record(age=timedelta(days=31)), record(age=timedelta(days=40)), record()
    )
    code, stdout, _ = invoke("purge", "--older-than", "30d")
    _, listed, _ = invoke("list")

    assert code == 0
    assert stdout.startswith("deleted 2 generation records created before ")
    assert ids_in(listed) == [recent.record_id]
    assert older.record_id < old.record_id < recent.record_id  # ids sort by creation time


def test_purge_without_a_duration_keeps_the_configured_retention(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTXFY_GENERATION_RETENTION_DAYS", "7")
    _, recent = stored(record(age=timedelta(days=8)), record(age=timedelta(days=6)))
    code, stdout, _ = invoke("purge")
    _, listed, _ = invoke("list")

    assert code == 0
    assert stdout.startswith("deleted 1 generation records")
    assert ids_in(listed) == [recent.record_id]


@pytest.mark.parametrize("duration", ["30", "1w", "-1d", "0d"])
def test_purge_refuses_an_invalid_or_zero_duration_before_deleting_anything(
    duration: str,
) -> None:
    (kept,) = stored(record(age=timedelta(days=90)))
    code, stdout, stderr = invoke("purge", "--older-than", duration)
    _, listed, _ = invoke("list")

    assert (code, stdout) == (2, "")
    assert "--older-than" in stderr
    assert ids_in(listed) == [kept.record_id]


def test_an_unreachable_database_is_reported_with_its_own_exit_code() -> None:
    result = runner.invoke(
        cli,
        ["generations", "list"],
        env={"CTXFY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert result.exit_code == 3
    assert "database unavailable" in result.stderr


def test_help_documents_the_exit_statuses() -> None:
    for command in ("list", "show", "purge"):
        result = runner.invoke(cli, ["generations", command, "--help"])
        assert result.exit_code == 0
        assert "1 no such record" in result.stdout
