"""A real, throw-away ``redis-server`` on 127.0.0.1 for the tests that need one.

No persistence (``--save ''``, ``--appendonly no``), its files in a directory of the test's
own, started on a free port and stopped by PID. A missing binary fails the test (``.ci/run``
installs Debian's ``redis-server``); it is never skipped.
"""

import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.server import free_port, pump_lines, stop_process

READY = "Ready to accept connections"
START_TIMEOUT = 15.0


@dataclass
class RedisServer:
    """A ``redis-server`` that can be stopped and started again on the same port."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: "subprocess.Popen[str] | None" = None
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The ``CTXFY_REDIS_URL`` of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait (bounded) until it accepts connections."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server was not found on PATH: install it (apt-get install redis-server) "
                "to run the rate-limit tests against Redis",
                pytrace=False,
            )
        process = subprocess.Popen(
            [
                binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
                *("--dir", str(self.directory), "--logfile", ""),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.process = process
        lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=pump_lines, args=(process, lines), daemon=True)
        self.reader.start()
        seen: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        while not any(READY in line for line in seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail(f"redis-server did not start in {START_TIMEOUT} s:\n" + "\n".join(seen))
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.stop()
                pytest.fail("redis-server exited during start-up:\n" + "\n".join(seen))
            seen.append(line)

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL), and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process, self.reader)


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """A started ``redis-server`` keeping its files in ``directory``; stopped afterwards."""
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
