"""``ctxfy serve`` as a container runs it: PID 1 of its own PID namespace.

The kernel delivers no signal to PID 1 that PID 1 has no handler for, so a SIGTERM sent while
the command is still importing and loading would be dropped and ``docker stop`` would wait for
its kill. The command handles SIGTERM from its first line instead.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.server import STARTED, free_port

UNSHARE = shutil.which("unshare")
SIGNAL_BOUND = 10.0  # the interpreter is up and the handler installed long before this
EXIT_BOUND = 10.0
# Bit n-1 of /proc/<pid>/status SigCgt: the process has a handler for signal n.
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def _child(pid: int) -> int | None:
    """The first child of ``pid``, once it has one."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _handles_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & SIGTERM_BIT)


def test_pid_one_stops_on_sigterm_sent_during_start_up(tmp_path: Path) -> None:
    if UNSHARE is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root for a PID namespace")
    env = {
        **os.environ,
        "CTXFY_PORT": str(free_port()),
        "CTXFY_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}",
        "CTXFY_DRAIN_SECONDS": "0",
    }
    process = subprocess.Popen(
        [UNSHARE, "--pid", "--fork", "--kill-child", sys.executable, "-m", "app", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + SIGNAL_BOUND
        server = _child(process.pid)
        while server is None or not _handles_sigterm(server):
            assert time.monotonic() < deadline, "ctxfy never installed a SIGTERM handler"
            assert process.poll() is None, "ctxfy exited before it could be signalled"
            # /proc has no change notification: wait on the process itself between looks.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.01)
            server = _child(process.pid)
        elapsed = SIGNAL_BOUND - (deadline - time.monotonic())
        os.kill(server, signal.SIGTERM)
        output, _ = process.communicate(timeout=EXIT_BOUND)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=EXIT_BOUND)
    assert process.returncode == 0, output
    print(f"\npid 1: SIGTERM {elapsed:.2f} s after start, exit {process.returncode}")  # noqa: T201
    assert STARTED not in output, "the signal came too late to show the start-up window"
