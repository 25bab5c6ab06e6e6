"""The ``ctxfy`` command refuses bad settings and bad prompts before it serves anything."""

import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from infrastructure.catalog.loader import load_catalog
from infrastructure.process.pid_file import write_pid_file

runner = CliRunner()
WAIT = 10.0
# The built-in prompts only, whatever the shell says (None unsets a variable).
NO_PROMPTS: dict[str, str | None] = {"CTXFY_PROMPTS_DIR": None}


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


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that SIGHUP ends (its default action), standing in for a server."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait(timeout=WAIT)


def test_prompts_reload_validates_then_sends_sighup_to_the_server_in_the_pid_file(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    write_prompt(tmp_path / "prompts", VALID.format(default="customers"))
    write_pid_file(tmp_path / "ctxfy.pid", sleeper.pid)

    result = runner.invoke(
        cli,
        ["prompts", "reload", "--pid-file", str(tmp_path / "ctxfy.pid")],
        env={"CTXFY_PROMPTS_DIR": str(tmp_path / "prompts")},
    )

    assert result.exit_code == 0, result.output
    assert f"{len(load_catalog()) + 1} prompts" in result.output
    assert f"sent SIGHUP to the server, pid {sleeper.pid}" in result.output
    assert sleeper.wait(timeout=WAIT) == -signal.SIGHUP


def test_prompts_reload_signals_nothing_when_a_prompt_file_is_broken(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = write_prompt(tmp_path / "prompts", VALID.format(default=3))
    write_pid_file(tmp_path / "ctxfy.pid", sleeper.pid)

    result = runner.invoke(
        cli,
        ["prompts", "reload", "--pid-file", str(tmp_path / "ctxfy.pid")],
        env={"CTXFY_PROMPTS_DIR": str(tmp_path / "prompts")},
    )
    sleeper.terminate()

    assert result.exit_code == 2
    assert "nothing signalled" in result.output
    assert str(path) in result.output
    # Had SIGHUP been sent, it (the lower number) would have ended the process first.
    assert sleeper.wait(timeout=WAIT) == -signal.SIGTERM


def test_prompts_reload_reports_a_stale_pid_file(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=WAIT)
    write_pid_file(tmp_path / "ctxfy.pid", gone.pid)

    result = runner.invoke(
        cli, ["prompts", "reload", "--pid-file", str(tmp_path / "ctxfy.pid")], env=NO_PROMPTS
    )

    assert result.exit_code == 1
    assert f"stale pid file {tmp_path / 'ctxfy.pid'}: no process {gone.pid}" in result.output


def test_prompts_reload_finds_the_server_by_its_port(sleeper: subprocess.Popen[bytes]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = Path(tempfile.gettempdir()) / f"ctxfy-{port}.pid"
    write_pid_file(path, sleeper.pid)
    try:
        result = runner.invoke(cli, ["prompts", "reload", "--port", str(port)], env=NO_PROMPTS)
    finally:
        path.unlink()

    assert result.exit_code == 0, result.output
    assert f"(from {path})" in result.output
    assert sleeper.wait(timeout=WAIT) == -signal.SIGHUP


def test_prompts_reload_without_a_running_server_names_the_pid_file_it_looked_for(
    tmp_path: Path,
) -> None:
    result = runner.invoke(
        cli, ["prompts", "reload"], env={**NO_PROMPTS, "CTXFY_PID_FILE": str(tmp_path / "x.pid")}
    )

    assert result.exit_code == 1
    assert f"no pid file at {tmp_path / 'x.pid'}" in result.output


def test_serve_refuses_to_watch_without_a_prompts_directory() -> None:
    result = runner.invoke(cli, ["serve"], env={**NO_PROMPTS, "CTXFY_PROMPTS_WATCH": "true"})
    assert result.exit_code == 2
    assert "CTXFY_PROMPTS_WATCH=true needs CTXFY_PROMPTS_DIR" in result.output
