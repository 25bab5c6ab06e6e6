"""A real Prometheus (Debian's ``prometheus`` package) on 127.0.0.1 for end-to-end tests."""

import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.server import free_port, pump_lines, stop_process

READY = "Server is ready to receive web requests."
STARTUP_TIMEOUT = 30.0
QUERY_TIMEOUT = 10.0


def prometheus_binary() -> str:
    """``prometheus`` on PATH, or where Debian installs it."""
    return shutil.which("prometheus") or "/usr/bin/prometheus"


def promtool_binary() -> str:
    """``promtool`` on PATH, or where Debian installs it."""
    return shutil.which("promtool") or "/usr/bin/promtool"


@dataclass
class RunningPrometheus:
    """A started Prometheus: where it listens, and what it has logged."""

    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    def query(self, expression: str) -> dict[str, Any]:
        """The body ``/api/v1/query`` answers for ``expression`` at the current time:
        ``status`` is ``success`` or ``error`` (with ``error``), whatever the HTTP status."""
        response = httpx.get(
            f"{self.base_url}/api/v1/query", params={"query": expression}, timeout=QUERY_TIMEOUT
        )
        body: dict[str, Any] = response.json()
        return body

    def rules(self) -> list[dict[str, Any]]:
        """Every rule ``/api/v1/rules`` reports, with its ``health`` and ``lastError``."""
        response = httpx.get(f"{self.base_url}/api/v1/rules", timeout=QUERY_TIMEOUT)
        response.raise_for_status()
        groups: list[dict[str, Any]] = response.json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


@contextmanager
def running_prometheus(directory: Path, config: Mapping[str, Any]) -> Iterator[RunningPrometheus]:
    """Start Prometheus with ``config`` and its storage under ``directory``, wait (bounded)
    until it says it is ready, and stop it by PID."""
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config)))
    port = free_port()
    process = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = RunningPrometheus(process=process, port=port)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=pump_lines, args=(process, lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not any(READY in line for line in server.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Prometheus did not start:\n" + "\n".join(server.lines))
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("Prometheus exited:\n" + "\n".join(server.lines))
            server.lines.append(line)
        drainer = threading.Thread(target=_drain, args=(lines, server), daemon=True)
        drainer.start()
        yield server
    finally:
        stop_process(process, reader)


def _drain(lines: "queue.Queue[str | None]", server: RunningPrometheus) -> None:
    while (line := lines.get()) is not None:
        server.lines.append(line)
