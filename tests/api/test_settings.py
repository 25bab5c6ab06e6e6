"""Settings as the app sees them: environment variables, an extra prompts directory, safety."""

import re
from pathlib import Path

import anyio
import pytest
from mcp.types import TextContent
from pydantic import ValidationError

from app.bootstrap import build_server_llm
from app.main import create_app
from app.settings import Settings, reference_table
from domain.errors import CatalogError
from domain.generation import LlmMode
from infrastructure.catalog.loader import BUILTIN_DIR
from scripts.readme_settings import readme_table
from tests.api.harness import issue_key, mcp_over_http, serving

pytestmark = pytest.mark.anyio

EXTRA_PROMPT = """\
name: api_test_release_note
title: Release Note
description: Writes a short release note for one change.
version: 1.0.0
tags: [testing]
arguments:
  - name: change
    description: The change being released.
    required: true
    max_length: 200
  - name: audience
    type: enum
    description: Who reads the note.
    choices: [users, operators]
    default: users
example:
  change: Exports now include archived projects.
  audience: operators
messages:
  - role: user
    content: "Write a release note for {{ audience }} about: {{ change }}"
"""


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    (directory / "release_note.yaml").write_text(EXTRA_PROMPT, encoding="utf-8")
    return directory


async def test_a_prompts_dir_from_the_environment_adds_its_prompt_to_rest_and_mcp(
    monkeypatch: pytest.MonkeyPatch, prompts_dir: Path
) -> None:
    monkeypatch.setenv("CTXFY_PROMPTS_DIR", str(prompts_dir))
    app = create_app(Settings())

    async with serving(app) as client:
        listed = (await client.get("/v1/prompts")).json()["prompts"]
        preview = await client.post(
            "/v1/prompts/api_test_release_note/preview", json={"change": "Faster exports."}
        )
        with anyio.fail_after(10):
            async with mcp_over_http(app, key=await issue_key(app)) as mcp:
                over_mcp = {p.name for p in await mcp.list_prompts()}
                result = await mcp.get_prompt(
                    "api_test_release_note", {"change": "Faster exports."}
                )

    assert "api_test_release_note" in [p["name"] for p in listed]
    assert "context_stack" in [p["name"] for p in listed]
    assert preview.status_code == 200
    text = "Write a release note for users about: Faster exports."
    assert preview.json()["messages"][0]["content"]["text"] == text
    assert "api_test_release_note" in over_mcp
    (message,) = result.messages
    assert isinstance(message.content, TextContent)
    assert message.content.text == text


async def test_an_extra_prompt_gets_its_own_preview_operation(prompts_dir: Path) -> None:
    app = create_app(Settings(prompts_dir=prompts_dir))

    async with serving(app) as client:
        openapi = (await client.get("/openapi.json")).json()

    operation = openapi["paths"]["/v1/prompts/api_test_release_note/preview"]["post"]
    assert operation["operationId"] == "preview_api_test_release_note"
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApiTestReleaseNoteArguments"
    }


def test_a_prompt_reusing_a_builtin_name_is_refused_naming_both_files(tmp_path: Path) -> None:
    clash = tmp_path / "my_context_stack.yaml"
    clash.write_text(
        EXTRA_PROMPT.replace("name: api_test_release_note", "name: context_stack"),
        encoding="utf-8",
    )

    with pytest.raises(CatalogError) as caught:
        create_app(Settings(prompts_dir=tmp_path))

    message = str(caught.value)
    assert str(clash) in message
    assert str(BUILTIN_DIR / "context_stack.yaml") in message
    assert "context_stack" in message


def test_a_missing_prompts_dir_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(CatalogError, match="not a directory") as caught:
        create_app(Settings(prompts_dir=missing))

    assert str(missing) in str(caught.value)


def test_debug_is_refused_in_prod() -> None:
    with pytest.raises(ValidationError, match="CTXFY_DEBUG=true is refused when CTXFY_ENV=prod"):
        Settings(env="prod", debug=True)


def test_debug_is_refused_in_prod_when_set_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTXFY_ENV", "prod")
    monkeypatch.setenv("CTXFY_DEBUG", "true")

    with pytest.raises(ValidationError, match="debug mode returns tracebacks"):
        Settings()


def test_settings_read_ctxfy_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "CTXFY_ENV": "staging",
        "CTXFY_PORT": "9001",
        "CTXFY_MCP_STATELESS": "true",
        "CTXFY_DOCS_ENABLED": "false",
        "CTXFY_LOG_LEVEL": "DEBUG",
        "CTXFY_PROMPTS_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.env == "staging"
    assert settings.port == 9001
    assert settings.mcp_stateless is True
    assert settings.docs_enabled is False
    assert settings.log_level == "DEBUG"
    assert settings.prompts_dir == tmp_path


def test_explicit_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXFY_PORT", "9001")

    assert Settings(port=8123).port == 8123


def test_an_invalid_environment_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXFY_PORT", "70000")

    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_the_llm_mode_defaults_to_client_without_a_server_llm_and_fallback_with_one() -> None:
    assert Settings().effective_llm_mode is LlmMode.CLIENT
    with_server = Settings(llm_base_url="http://127.0.0.1:11434/v1", llm_model="llama3")
    assert with_server.effective_llm_mode is LlmMode.FALLBACK
    chosen = Settings(llm_mode=LlmMode.CLIENT, llm_base_url="https://llm.test/v1", llm_model="m")
    assert chosen.effective_llm_mode is LlmMode.CLIENT


def test_the_llm_settings_come_from_the_environment_and_the_key_stays_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTXFY_LLM_MODE", "server")
    monkeypatch.setenv("CTXFY_LLM_BASE_URL", "https://llm.test/v1")
    monkeypatch.setenv("CTXFY_LLM_MODEL", "gpt-test")
    monkeypatch.setenv("CTXFY_LLM_API_KEY", "sk-upstream-secret")
    monkeypatch.setenv("CTXFY_LLM_TIMEOUT_SECONDS", "30")
    settings = Settings()
    assert (settings.effective_llm_mode, settings.llm_model) == (LlmMode.SERVER, "gpt-test")
    assert settings.llm_timeout_seconds == 30
    assert "sk-upstream-secret" not in repr(settings)
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-upstream-secret"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"llm_base_url": "https://llm.test/v1"}, "CTXFY_LLM_MODEL must name a model"),
        ({"llm_base_url": "ftp://llm.test", "llm_model": "m"}, "http:// or https://"),
        ({"llm_mode": "server"}, "CTXFY_LLM_MODE=server needs CTXFY_LLM_BASE_URL"),
        ({"llm_mode": "sometimes"}, "'client', 'server' or 'fallback'"),
        ({"llm_connect_timeout_seconds": 6}, "less than or equal to 5"),
        ({"llm_timeout_seconds": 0}, "greater than 0"),
    ],
)
def test_incomplete_or_unsafe_llm_settings_are_refused(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(**values)  # type: ignore[arg-type]  # bad values on purpose


def test_the_server_llm_is_built_only_when_configured() -> None:
    assert build_server_llm(Settings()) is None
    llm = build_server_llm(
        Settings(llm_base_url="https://llm.test/v1", llm_model="gpt-test", llm_timeout_seconds=9)
    )
    assert llm is not None
    assert (llm.model, llm.total_timeout) == ("gpt-test", 9)


@pytest.mark.parametrize("level", ["info", "Warning", "DEBUG"])
def test_log_levels_are_accepted_in_any_case(level: str) -> None:
    assert Settings(log_level=level).log_level == level.upper()


STATE_KEY = "k" * 32
SAFE_PROD: dict[str, object] = {
    "env": "prod",
    "host": "0.0.0.0",  # noqa: S104 — a container's address, which prod checks
    "allowed_hosts": "ctxfy.example.com",
    "workers": 2,
    "database_url": "postgresql://ctxfy@db.internal/ctxfy",
    "mcp_state_keys": STATE_KEY,
    # The suite's environment lowers argon2's cost for speed; prod is shown its minimum.
    "argon2_time_cost": 2,
    "argon2_memory_cost_kib": 19_456,
}


def test_a_safe_prod_configuration_starts() -> None:
    assert Settings(**SAFE_PROD).env == "prod"  # type: ignore[arg-type]  # pydantic checks


@pytest.mark.parametrize(
    ("unsafe", "refusal"),
    [
        ({"debug": True}, "CTXFY_DEBUG=true is refused when CTXFY_ENV=prod"),
        ({"allowed_hosts": ""}, "CTXFY_ALLOWED_HOSTS must name the hosts"),
        ({"database_url": "sqlite:///ctxfy.db"}, "CTXFY_DATABASE_URL must be postgresql"),
        ({"mcp_state_keys": None}, "CTXFY_MCP_STATE_KEYS must be set"),
        ({"argon2_time_cost": 1}, "argon2 parameters below OWASP's minimum"),
        ({"argon2_memory_cost_kib": 8192}, "argon2 parameters below OWASP's minimum"),
    ],
    ids=[
        "debug",
        "no-allowed-hosts",
        "sqlite-workers",
        "no-state-keys",
        "argon2-time",
        "argon2-memory",
    ],
)
def test_prod_refuses_each_unsafe_value_naming_it_and_staging_accepts_it(
    unsafe: dict[str, object], refusal: str
) -> None:
    with pytest.raises(ValidationError, match=refusal):
        Settings(**(SAFE_PROD | unsafe))  # type: ignore[arg-type]  # pydantic checks
    assert Settings(**(SAFE_PROD | unsafe | {"env": "staging"})).env == "staging"  # type: ignore[arg-type]  # as above


def test_prod_takes_sqlite_with_one_worker() -> None:
    one = Settings(**(SAFE_PROD | {"database_url": "sqlite:///ctxfy.db", "workers": 1}))  # type: ignore[arg-type]  # as above
    assert one.workers == 1


def test_the_readme_settings_table_is_generated_from_the_settings() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    assert readme_table(readme) == reference_table(), "README.md is stale: run `make readme`"


def test_every_setting_is_in_the_reference_with_a_meaning() -> None:
    table = reference_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"CTXFY_{name.upper()} has no description"
        assert f"| `CTXFY_{name.upper()}` |" in table


def test_the_reference_shows_defaults_that_differ_by_profile() -> None:
    rows = {row.split(" | ")[0]: row for row in reference_table().splitlines()}
    assert "`full` in dev; `metadata` in staging, prod" in rows["| `CTXFY_GENERATION_RECORDS`"]
    assert "`true` in dev; `false` in staging, prod" in rows["| `CTXFY_RATE_LIMIT_FAIL_OPEN`"]
    assert "| 1–64 |" in rows["| `CTXFY_WORKERS`"]


def test_an_empty_llm_base_url_means_no_server_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXFY_LLM_BASE_URL", "")
    settings = Settings()
    assert settings.llm_base_url is None
    assert not settings.server_llm_configured
