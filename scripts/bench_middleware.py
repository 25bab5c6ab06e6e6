"""Throughput of ``/health/live`` through the full middleware stack versus a bare app.

Starts two real uvicorn servers on 127.0.0.1, side by side and with the same uvicorn
options as ``ctxfy serve``: the full application as ``create_app`` builds it at run time
(settings from the environment, logging configured) and a bare FastAPI app with the same
health router and no middleware. A keep-alive HTTP/1.1 load generator (asyncio, in this
process) drives each in alternating rounds; the script prints req/s, p50 and p95 per
round, the medians, and the ratio full / bare. Servers are stopped by PID.

    uv run python scripts/bench_middleware.py [--rounds 3] [--requests 20000] [--connections 50]

Target (issue #4): the full stack keeps >= 0.5x the bare throughput. The load generator
shares the machine with the server under test, so absolute numbers are lower than wrk's;
the ratio is what this script is for.
"""

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
import uvloop
from fastapi import FastAPI
from pydantic import SecretStr

from app.http.routes import health
from app.main import create_app
from app.settings import Settings

TARGET_RATIO = 0.5
PATH = "/health/live"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n".encode()


def bare_app() -> FastAPI:
    """FastAPI with Ctxfy's own health router and nothing else: no middleware, no MCP."""
    app = FastAPI()
    app.include_router(health.build_router())
    return app


def serve(kind: str, port: int) -> None:
    """Run one server in this process (the script starts itself with ``--serve``)."""
    full = kind == "full"
    uvicorn.run(
        "app.main:create_app_from_env" if full else bare_app(),
        factory=full,
        host="127.0.0.1",
        port=port,
        # The uvicorn options ``ctxfy serve`` passes, so only the application differs.
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A started server process and where it listens."""

    kind: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Send one request on a kept-alive connection and read the whole response."""
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


@dataclass
class Round:
    """One measured round against one server."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.seconds

    def percentile(self, p: int) -> float:
        """Latency percentile in milliseconds."""
        return statistics.quantiles(self.latencies_ms, n=100)[p - 1]


async def drive(port: int, requests: int, connections: int, max_seconds: float) -> Round:
    """``requests`` GETs over ``connections`` keep-alive connections, stopping at
    ``max_seconds`` if not done by then."""
    remaining = requests
    errors = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal remaining, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                started = time.perf_counter_ns()
                status = await _get(reader, writer)
                latencies.append((time.perf_counter_ns() - started) / 1e6)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for _ in range(connections):
            tasks.create_task(worker())
    return Round(len(latencies), errors, time.perf_counter() - started, latencies)


def wait_until_live(server: Server) -> None:
    """Bounded wait for the server's first 200 on the probed path."""
    deadline = time.monotonic() + STARTUP_TIMEOUT

    async def probe() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        except OSError:
            return False
        try:
            return await _get(reader, writer) == 200
        finally:
            writer.close()

    while not uvloop.run(probe()):
        try:
            # Waiting on the process both paces the polls and notices a crash.
            code = server.process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.kind} server did not start (exit code {code}):\n"
                + server.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            )


@contextmanager
def servers(workdir: Path) -> Iterator[dict[str, Server]]:
    """Start the full and the bare server; stop both by PID afterwards."""
    env = {
        **os.environ,
        "CTXFY_DATABASE_URL": f"sqlite:///{workdir / 'keys.db'}",
        "CTXFY_LOG_FORMAT": "json",
    }
    started: dict[str, Server] = {}
    try:
        for kind in ("full", "bare"):
            port = free_port()
            log = workdir / f"{kind}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, __file__, "--serve", kind, "--port", str(port)],
                    env=env,
                    stdout=subprocess.DEVNULL,  # the full app's request log: written, unread
                    stderr=sink,
                )
            started[kind] = Server(kind, process, port, log)
        for server in started.values():
            wait_until_live(server)
        yield started
    finally:
        for server in started.values():
            server.process.terminate()
        for server in started.values():
            try:
                server.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=STOP_TIMEOUT)


def describe_full_stack(workdir: Path) -> str:
    """The middleware ``create_app`` adds, outermost first, as built right now."""
    app = create_app(Settings(database_url=SecretStr(f"sqlite:///{workdir / 'keys.db'}")))
    return " -> ".join(getattr(m.cls, "__name__", repr(m.cls)) for m in app.user_middleware)


def main(rounds: int, requests: int, connections: int, max_seconds: float) -> int:
    """Measure, print, and return the exit status (1 if a sanity check fails)."""
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        print(f"full stack middleware: {describe_full_stack(workdir) or '(none)'}")
        print(
            f"GET {PATH}: {rounds} alternating rounds of {requests} requests, "
            f"{connections} keep-alive connections, {os.cpu_count()} CPUs shared with the client"
        )
        results: dict[str, list[Round]] = {"bare": [], "full": []}
        with servers(workdir) as started:
            for server in started.values():  # warm-up, not reported
                uvloop.run(drive(server.port, min(requests, 2_000), connections, max_seconds))
            print(f"{'round':<7}{'app':<6}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}")
            for index in range(1, rounds + 1):
                for kind in ("bare", "full"):
                    result = uvloop.run(
                        drive(started[kind].port, requests, connections, max_seconds)
                    )
                    results[kind].append(result)
                    print(
                        f"{index:<7}{kind:<6}{result.rate:>10.0f}{result.percentile(50):>9.2f}"
                        f"{result.percentile(95):>9.2f}{result.errors:>8}"
                    )

    print("\nmedian of rounds")
    rates = {}
    for kind, rows in results.items():
        rates[kind] = statistics.median(r.rate for r in rows)
        print(
            f"  {kind:<5} {rates[kind]:>8.0f} req/s   "
            f"p50 {statistics.median(r.percentile(50) for r in rows):.2f} ms   "
            f"p95 {statistics.median(r.percentile(95) for r in rows):.2f} ms"
        )
    ratio = rates["full"] / rates["bare"]
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"  ratio full/bare {ratio:.2f}x ({verdict} the {TARGET_RATIO}x target)")

    errors = sum(r.errors for rows in results.values() for r in rows)
    if errors or min(rates.values()) <= 0:
        print(f"sanity check failed: {errors} non-200 responses", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000, help="per round and server")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap per round")
    parser.add_argument("--serve", choices=["full", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        sys.exit(main(args.rounds, args.requests, args.connections, args.max_seconds))
