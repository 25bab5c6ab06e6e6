"""The pid file on a real file system, naming real processes."""

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from infrastructure.process.pid_file import (
    PidFileError,
    read_server_pid,
    remove_pid_file,
    signal_server,
    write_pid_file,
)

WAIT = 10.0


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that SIGHUP ends (its default action), standing in for a server."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait(timeout=WAIT)


def exited_pid() -> int:
    """The pid of a process that has come and gone."""
    process = subprocess.Popen(["true"])
    process.wait(timeout=WAIT)
    return process.pid


def test_a_written_pid_file_names_the_process_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ctxfy-8000.pid"

    write_pid_file(path, os.getpid())

    assert read_server_pid(path) == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o644


def test_writing_replaces_a_symlink_rather_than_writing_through_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep me", "utf-8")
    path = tmp_path / "ctxfy.pid"
    path.symlink_to(target)

    write_pid_file(path, os.getpid())

    assert target.read_text("utf-8") == "keep me"
    assert not path.is_symlink()


def test_a_pid_file_in_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="No such file"):
        write_pid_file(tmp_path / "missing" / "ctxfy.pid", os.getpid())


def test_a_server_removes_only_its_own_pid_file(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine.pid", tmp_path / "theirs.pid"
    write_pid_file(mine, 1234)
    write_pid_file(theirs, 5678)

    remove_pid_file(mine, 1234)
    remove_pid_file(theirs, 1234)
    remove_pid_file(tmp_path / "never-written.pid", 1234)

    assert not mine.exists()
    assert theirs.exists()


def test_no_pid_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(PidFileError, match=r"no pid file at .*ctxfy-9000\.pid"):
        read_server_pid(tmp_path / "ctxfy-9000.pid")


def test_a_pid_file_naming_an_exited_process_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "ctxfy.pid"
    pid = exited_pid()
    write_pid_file(path, pid)

    with pytest.raises(PidFileError, match=f"stale pid file .*no process {pid} is running"):
        read_server_pid(path)


@pytest.mark.parametrize("content", ["", "0", "-1", "12abc", "1 2"])
def test_a_pid_file_without_one_positive_pid_is_refused(tmp_path: Path, content: str) -> None:
    # 0 and negative numbers would signal whole process groups.
    path = tmp_path / "ctxfy.pid"
    path.write_text(content, "ascii")

    with pytest.raises(PidFileError, match="does not hold a process id"):
        read_server_pid(path)


def test_a_pid_file_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "ctxfy.pid"
    write_pid_file(path, os.getpid())
    path.chmod(0o666)

    with pytest.raises(PidFileError, match="writable by others; refusing"):
        read_server_pid(path)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")
def test_a_pid_file_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    # Planted in a shared /tmp by someone else, it could name any process we may signal.
    path = tmp_path / "ctxfy.pid"
    write_pid_file(path, os.getpid())
    os.chown(path, 54321, -1)

    with pytest.raises(PidFileError, match="belongs to uid 54321"):
        read_server_pid(path)


def test_a_symlinked_pid_file_is_not_trusted(tmp_path: Path) -> None:
    real = tmp_path / "real.pid"
    write_pid_file(real, os.getpid())
    (tmp_path / "ctxfy.pid").symlink_to(real)

    with pytest.raises(PidFileError, match="not a regular file"):
        read_server_pid(tmp_path / "ctxfy.pid")


def test_signalling_the_server_sends_sighup_to_the_pid_it_names(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = tmp_path / "ctxfy.pid"
    write_pid_file(path, sleeper.pid)

    assert signal_server(path) == sleeper.pid

    assert sleeper.wait(timeout=WAIT) == -signal.SIGHUP


def test_a_process_of_another_user_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "ctxfy.pid"
    write_pid_file(path, os.getpid())

    def refuse(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    with pytest.raises(PidFileError, match=f"not allowed to signal process {os.getpid()}"):
        signal_server(path, send=refuse)


@pytest.mark.usefixtures("hermetic_settings")
def test_the_pid_file_is_named_for_the_port_in_the_temp_directory_unless_set() -> None:
    assert Settings(port=9123).pid_path == Path(tempfile.gettempdir()) / "ctxfy-9123.pid"
    assert Settings(port=9123, pid_file=Path("/run/ctxfy.pid")).pid_path == Path("/run/ctxfy.pid")
