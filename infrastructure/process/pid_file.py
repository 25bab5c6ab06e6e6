"""The pid file ``ctxfy serve`` leaves for ``ctxfy prompts reload``: which process to signal.

The default lives in a shared temporary directory, so a file is trusted only if the caller
(or root) owns it and nobody else may write it: otherwise another local user could plant
one naming any process the caller is allowed to signal.
"""

import contextlib
import os
import signal
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


class PidFileError(Exception):
    """The pid file does not name a running server that may be signalled."""


def write_pid_file(path: Path, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically (a reader never sees half a file).

    Raises:
        OSError: the directory is missing or not writable.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(f"{pid}\n")
        os.chmod(temporary, 0o644)
        # Replaces a symlink itself rather than the file it points to.
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_pid_file(path: Path, pid: int) -> None:
    """Remove ``path`` if it still names ``pid``; another server's file is left alone."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text(encoding="ascii").strip()) == pid:
            path.unlink()


def read_server_pid(path: Path) -> int:
    """The running server's pid, from a pid file that may be trusted.

    Raises:
        PidFileError: no such file, a file someone else could have written, not a pid, or
            a pid no process has any more (the server died without removing its file).
    """
    try:
        info = path.lstat()
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        raise PidFileError(
            f"no pid file at {path}: is `ctxfy serve` running with this port or "
            "CTXFY_PID_FILE? (--port, --pid-file)"
        ) from None
    except OSError as exc:
        raise PidFileError(f"cannot read the pid file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PidFileError(f"{path} is not a regular file; refusing to trust it")
    if info.st_uid not in (os.getuid(), 0) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PidFileError(
            f"{path} belongs to uid {info.st_uid} or is writable by others; refusing to "
            "signal the process it names (run this as the user that runs the server)"
        )
    if not text.isdigit() or int(text) < 1:
        # Never 0 or negative: os.kill would signal a whole process group.
        raise PidFileError(f"{path} does not hold a process id: {text[:40]!r}")
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise PidFileError(
            f"stale pid file {path}: no process {pid} is running (the server stopped "
            "without removing it; delete the file)"
        ) from None
    except PermissionError:
        pass  # it exists; whether it may be signalled is answered when it is
    return pid


def signal_server(
    path: Path, sig: int = signal.SIGHUP, *, send: Callable[[int, int], None] = os.kill
) -> int:
    """Send ``sig`` to the server ``path`` names and return its pid.

    Raises:
        PidFileError: see ``read_server_pid``; or the process belongs to another user.
    """
    pid = read_server_pid(path)
    try:
        send(pid, sig)
    except ProcessLookupError:
        raise PidFileError(f"process {pid} (from {path}) exited before it was signalled") from None
    except PermissionError:
        raise PidFileError(
            f"not allowed to signal process {pid} (from {path}): run this as the user "
            "that runs the server"
        ) from None
    return pid
