"""The ``ctxfy`` command refuses bad settings and bad prompts before it serves anything."""

from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from infrastructure.catalog.loader import load_catalog

runner = CliRunner()


def write_prompt(directory: Path, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "release_notes.yaml"
    path.write_text(body, encoding="utf-8")
    return path


VALID = """\
name: release_notes
title: Release notes
description: Writes release notes.
version: 1.0.0
arguments:
  - name: audience
    description: Who reads them.
    default: {default}
messages:
  - content: "Notes for {{{{ audience }}}}"
"""


def test_prompts_check_counts_the_built_ins_and_a_valid_directory(tmp_path: Path) -> None:
    write_prompt(tmp_path / "prompts", VALID.format(default="customers"))
    result = runner.invoke(cli, ["prompts", "check", str(tmp_path / "prompts")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"ok: {len(load_catalog()) + 1} prompts"


def test_prompts_check_names_file_prompt_and_field_of_a_bad_prompt(tmp_path: Path) -> None:
    path = write_prompt(tmp_path / "prompts", VALID.format(default=3))
    result = runner.invoke(cli, ["prompts", "check", str(tmp_path / "prompts")])
    assert result.exit_code == 2
    assert str(path) in result.output
    assert "prompt 'release_notes'" in result.output
    assert "field 'arguments.audience.default'" in result.output


def test_serve_refuses_a_bad_prompts_directory_before_starting(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["serve"], env={"CTXFY_PROMPTS_DIR": str(tmp_path / "missing")})
    assert result.exit_code == 2
    assert "prompts directory does not exist" in result.output


def test_serve_refuses_debug_in_prod_with_a_plain_message() -> None:
    result = runner.invoke(cli, ["serve"], env={"CTXFY_ENV": "prod", "CTXFY_DEBUG": "true"})
    assert result.exit_code == 2
    assert "CTXFY_DEBUG=true is refused when CTXFY_ENV=prod" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_an_out_of_range_port() -> None:
    result = runner.invoke(cli, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "port" in result.output


def test_serve_refuses_an_unknown_database_url_without_echoing_it() -> None:
    result = runner.invoke(
        cli, ["serve"], env={"CTXFY_DATABASE_URL": "mysql://root:hunter2@db/keys"}
    )
    assert result.exit_code == 2
    assert "must start with sqlite:/// or postgresql://" in result.output
    assert "hunter2" not in result.output
