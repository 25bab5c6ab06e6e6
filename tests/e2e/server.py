"""A real ``ctxfy serve`` process on 127.0.0.1 for end-to-end tests."""

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STARTED = "Application startup complete"
# One worker binds its port after the lifespan has run and then says so; several workers get
# a port the supervisor bound before any of them started (and it logs nothing).
LISTENING = "Uvicorn running on"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A started server: where it listens, a key for it, and what it has logged."""

    process: subprocess.Popen[str]
    port: int
    key: str
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        """All output so far, once ``text`` appears in it (bounded by ``timeout``)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: text in "\n".join(self.lines), timeout):
                raise TimeoutError(f"{text!r} did not appear in the server output")
            return "\n".join(self.lines)

    def wait_for_line(self, matches: Callable[[str], bool], timeout: float = 10.0) -> str:
        """The first output line that ``matches``, once there is one (bounded by ``timeout``)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: any(map(matches, self.lines)), timeout):
                raise TimeoutError("no matching line appeared in the server output")
            return next(line for line in self.lines if matches(line))

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        """The MCP endpoint, as a client is told it."""
        return f"{self.base_url}/mcp"


def pump_lines(stream: "subprocess.Popen[str]", lines: "queue.Queue[str | None]") -> None:
    """Put each output line of ``stream`` on ``lines``, then ``None`` when it ends."""
    assert stream.stdout is not None
    for line in stream.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def ctxfy(env: Mapping[str, str], *args: str) -> str:
    """Run the ``ctxfy`` command (as ``python -m app``) and return its stdout."""
    completed = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"ctxfy {' '.join(args)} failed:\n{completed.stderr}")
    return completed.stdout


@contextmanager
def running_server(
    database_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    scope: str = "read",
    key: str | None = None,
) -> Iterator[RunningServer]:
    """Start ``python -m app serve`` on its own key store with a key of ``scope`` made by
    the CLI, wait (bounded) for its startup line, and stop it by PID.

    ``key``: one already in the store under ``database_dir`` (another server's), so two
    servers share a database and a caller; none is made then.
    """
    port = free_port()
    process_env = {
        **os.environ,
        "CTXFY_HOST": "127.0.0.1",
        "CTXFY_PORT": str(port),
        "CTXFY_LOG_FORMAT": "json",
        "CTXFY_DATABASE_URL": f"sqlite:///{database_dir / 'keys.db'}",
        **(env or {}),
    }
    if key is None:
        key = ctxfy(process_env, "keys", "create", "--user", "e2e", "--scope", scope).strip()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = RunningServer(process=process, port=port, key=key, env=process_env)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=pump_lines, args=(process, lines), daemon=True)
    reader.start()
    several = int(process_env.get("CTXFY_WORKERS", "1")) > 1
    wanted_lines = (STARTED,) if several else (STARTED, LISTENING)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"server did not start in {STARTUP_TIMEOUT}s:\n" + "\n".join(server.lines)
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("server exited during start-up:\n" + "\n".join(server.lines))
            server.lines.append(line)
            if all(any(wanted in seen for seen in server.lines) for wanted in wanted_lines):
                break
        drainer = threading.Thread(target=_drain, args=(lines, server), daemon=True)
        drainer.start()
        yield server
    finally:
        stop_process(process, reader)


def stop_process(process: "subprocess.Popen[str]", reader: threading.Thread | None) -> None:
    """SIGTERM, then SIGKILL if it outlives ``STOP_TIMEOUT``; then its output reader."""
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)
    if reader is not None:
        reader.join(timeout=STOP_TIMEOUT)  # it ends at the output's end
    if process.stdout is not None:
        process.stdout.close()


def _drain(lines: "queue.Queue[str | None]", server: RunningServer) -> None:
    while (line := lines.get()) is not None:
        with server.arrived:
            server.lines.append(line)
            server.arrived.notify_all()
