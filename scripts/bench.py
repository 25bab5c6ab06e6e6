"""Ctxfy against bare FastMCP, side by side on this machine (run it as ``scripts/bench``).

In one run, with the same transport mode, worker count and uvicorn options, it starts:

- ``bare``: the built-in prompts served by a plain FastMCP app mounted in FastAPI
  (``scripts/bench_bare.py``) on the FastMCP version Ctxfy uses, with no auth, logs,
  metrics or limits; it also serves a plain FastAPI preview endpoint and ``/health/live``;
- ``bare2``: the same file on FastMCP 2.14.7, in a venv of its own under ``.tools/``;
- ``full``: ``ctxfy serve`` itself, with a valid key, its JSON access log written to a file,
  metrics and rate limits on (the read limit set above the load, so it is checked, not hit).

Closed loop: wrk (Debian's, with a Lua script) at fixed concurrency for MCP ``prompts/get``
(stateless JSON and the stateful default) and ``prompts/list``, REST preview and
``/health/live``, the servers alternating within each round; medians of the rounds. Open
loop: a constant 500 req/s of ``prompts/get`` for 60 s on ``ctxfy serve`` defaults, each
latency measured from the request's scheduled time (no coordinated omission), with
``/health/live`` probed beside it. Then stateless scaling from 1 to 2 workers, RSS across the
run (leak check: in each mode the full server serves ``--leak-requests``, with more
``prompts/get`` if the cases did not reach it), and ``scripts/bench_auth.py``. It prints
each case's req/s, p50/p95/p99, errors and ratios against the targets, and writes the JSON
summary to ``--json``.

Traffic goes to 127.0.0.1 only; every server started is stopped by PID.

    scripts/bench [--rounds 3] [--seconds 10] [--open-seconds 60] [--json bench.json]
                  [--before REF]

``--before REF`` also runs ``ctxfy serve`` from a worktree of that git ref, alternating with
this tree in every round, and prints full / before per case: what a change bought, measured
in one run (figures from separate runs differ by up to 20% on a 2-core box).
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import uvloop

from scripts.tool_venv import tool_python

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = ROOT / "scripts" / "bench_bare.py"
PROTOCOL = "2025-06-18"  # an initialize-era revision every server here speaks
PROMPT = "context_stack"
ARGUMENTS = {"task": "Rotate the signing keys of the identity service.", "domain": "identity"}
STARTUP_TIMEOUT = 90.0
REQUEST_TIMEOUT = 10.0  # an open-loop request still unanswered by then is an error
STOP_TIMEOUT = 20.0
WRK_THREADS = 1  # the load generator shares the 2 cores with the server under test
HIGH_LIMIT = "1000000/minute"  # checked on every request, never reached
LEAK_REQUESTS = 100_000  # the RSS target's count

TARGETS = {
    "prompts_get_vs_bare": 1.3,
    "prompts_get_vs_bare2": 1.0,
    "preview_vs_fastapi": 0.5,
    "open_loop_p95_ms": 50.0,
    "live_p95_ms_under_load": 10.0,
    "workers_scaling": 1.7,
    "rss_drift": 0.10,
}

ID_MARK = b'"id": 0'
LUA = """
wrk.method = "{method}"
{headers}
local template = {body}
local sent = 0
request = function()
  sent = sent + 1
  local body = template and string.format(template, sent) or nil
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,'
    .. '"p50":%d,"p95":%d,"p99":%d}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Request:
    """One HTTP request a case sends, over and over."""

    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    expect: bytes = b""  # in the body of a right answer


@dataclass
class Server:
    """A started server process: where it listens and how to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    headers: dict[str, str] = field(default_factory=dict)  # key, session

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        """Resident memory of the server and its worker processes, in KiB."""
        pids = [self.process.pid, *_children(self.process.pid)]
        total = 0
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            total += int(match.group(1)) if match else 0
        return total


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def mcp_request(method: str, params: Mapping[str, Any], expect: bytes) -> Request:
    """A JSON-RPC request to ``/mcp`` as an initialize-era client sends it."""
    # A stateful session answers each request by its id: every request sends its own
    # (ID_MARK is replaced per request, by wrk's Lua and by the open-loop client).
    body = {"jsonrpc": "2.0", "id": 0, "method": method, "params": dict(params)}
    return Request(
        "POST",
        "/mcp",
        json.dumps(body).encode(),
        {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
        },
        expect,
    )


PROMPTS_GET = mcp_request(
    "prompts/get", {"name": PROMPT, "arguments": ARGUMENTS}, b"Build a Context Stack"
)
PROMPTS_LIST = mcp_request("prompts/list", {}, b"technical_specification")
PREVIEW = Request(
    "POST",
    f"/v1/prompts/{PROMPT}/preview",
    json.dumps(ARGUMENTS).encode(),
    {"Content-Type": "application/json"},
    b"Build a Context Stack",
)
LIVE = Request("GET", "/health/live", expect=b"status")


def _wait_until_live(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            if httpx.get(f"{server.url}/health/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        try:
            code = server.process.wait(timeout=0.1)  # paces the polls, notices a crash
        except subprocess.TimeoutExpired:
            code = None
        if code is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.name} did not start (exit {code}):\n"
                + server.log.read_text("utf-8", "replace")[-3000:]
            )


def _stop(servers: list[Server]) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in servers:
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=STOP_TIMEOUT)


def full_env(workdir: Path, *, stateless: bool, workers: int = 1) -> dict[str, str]:
    """``ctxfy serve``'s environment: defaults but for the store, mode and read limit."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CTXFY_")},
        "CTXFY_DATABASE_URL": f"sqlite:///{workdir / 'keys.db'}",
        "CTXFY_MCP_STATELESS": "true" if stateless else "false",
        "CTXFY_WORKERS": str(workers),
        "CTXFY_RATE_LIMIT_READ": HIGH_LIMIT,
        "CTXFY_PID_FILE": str(workdir / f"ctxfy-{workers}.pid"),
        "CTXFY_DRAIN_SECONDS": "0",
    }


@contextmanager
def started(
    workdir: Path,
    bare2_python: Path | None,
    *,
    stateless: bool,
    workers: int = 1,
    before: Path | None = None,
) -> Iterator[dict[str, Server]]:
    """The bare, bare2 and full servers in one mode (bare ones only with one worker), and
    ``before``: ``ctxfy serve`` from that checkout, beside this one, with the same key."""
    servers: list[Server] = []
    env = full_env(workdir, stateless=stateless, workers=workers)
    key = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--user", "bench", "--scope", "read"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    ).stdout.strip()
    commands: dict[str, list[str]] = {}
    if workers == 1:
        mode = ["--stateless"] if stateless else []
        commands["bare"] = [sys.executable, str(BARE_APP), *mode]
        if bare2_python is not None:
            commands["bare2"] = [str(bare2_python), str(BARE_APP), *mode]
    commands["full"] = [sys.executable, "-m", "app", "serve"]
    places = {"full": (ROOT, env)}
    if before is not None:
        # Run from its own tree (``-m app`` imports from the working directory first).
        commands["before"] = commands["full"]
        places["before"] = (before, env | {"CTXFY_PID_FILE": str(workdir / "before.pid")})
    try:
        for name, command in commands.items():
            port = free_port()
            log = workdir / f"{name}-{'stateless' if stateless else 'stateful'}-{workers}.log"
            cwd, server_env = places.get(name, (ROOT, env))
            with log.open("wb") as sink:
                argv = [*command, "--port", str(port)]
                process = subprocess.Popen(
                    argv, env=server_env, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd
                )
            server = Server(name, process, port, log)
            if name in places:
                server.headers["Authorization"] = f"Bearer {key}"
            servers.append(server)
        for server in servers:
            _wait_until_live(server)
            if not stateless:
                server.headers["Mcp-Session-Id"] = _open_session(server)
        yield {server.name: server for server in servers}
    finally:
        _stop(servers)


def _open_session(server: Server) -> str:
    """An initialize-era session on ``server``: initialize, then initialized."""
    initialize = mcp_request(
        "initialize",
        {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
        b"",
    )
    headers = {**initialize.headers, **server.headers}
    answer = httpx.post(server.url + "/mcp", content=initialize.body, headers=headers, timeout=10)
    answer.raise_for_status()
    session = answer.headers["mcp-session-id"]
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    httpx.post(
        server.url + "/mcp",
        content=initialized,
        headers={**headers, "Mcp-Session-Id": session},
        timeout=10,
    ).raise_for_status()
    return session


def check_answer(server: Server, request: Request) -> None:
    """One request by hand: the case measures right answers, not fast errors."""
    answer = httpx.request(
        request.method,
        server.url + request.path,
        content=request.body or None,
        headers={**request.headers, **server.headers},
        timeout=10,
    )
    if answer.status_code != 200 or request.expect not in answer.content:
        raise RuntimeError(
            f"{server.name} {request.method} {request.path}: {answer.status_code} "
            f"{answer.text[:500]}"
        )


@dataclass
class Run:
    """One wrk run: throughput, latency percentiles and errors."""

    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int


def wrk(
    server: Server, request: Request, *, seconds: float, connections: int, workdir: Path
) -> Run:
    """Closed loop: ``connections`` kept-alive connections for ``seconds``."""
    headers = {**request.headers, **server.headers}
    script = workdir / "case.lua"
    script.write_text(
        LUA.format(
            method=request.method,
            body=json.dumps(_numbered(request.body).decode()) if request.body else "nil",
            headers="\n".join(
                f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()
            ),
        )
    )
    done = subprocess.run(
        [
            shutil.which("wrk") or "wrk",
            f"-t{WRK_THREADS}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            server.url + request.path,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(
        rate=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50"] / 1000,
        p95_ms=figures["p95"] / 1000,
        p99_ms=figures["p99"] / 1000,
        errors=figures["status_errors"] + figures["socket_errors"],
        requests=figures["requests"],
    )


@dataclass
class Case:
    """A case's runs per server, and their medians."""

    name: str
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, server: str, attribute: str) -> float:
        """The median over rounds of one figure of one server."""
        return float(statistics.median(getattr(run, attribute) for run in self.runs[server]))

    def ratio(self, server: str, reference: str) -> float | None:
        """``server``'s median req/s over ``reference``'s, if both ran."""
        if server not in self.runs or reference not in self.runs:
            return None
        return self.median(server, "rate") / self.median(reference, "rate")

    def summary(self) -> dict[str, Any]:
        """Medians and totals per server, for the JSON summary."""
        return {
            server: {
                "req_s": round(self.median(server, "rate"), 1),
                "p50_ms": round(self.median(server, "p50_ms"), 2),
                "p95_ms": round(self.median(server, "p95_ms"), 2),
                "p99_ms": round(self.median(server, "p99_ms"), 2),
                "errors": sum(run.errors for run in runs),
                "rounds": [asdict(run) for run in runs],
            }
            for server, runs in self.runs.items()
        }


def closed_loop(
    servers: Mapping[str, Server],
    cases: Mapping[str, tuple[Request, tuple[str, ...]]],
    *,
    rounds: int,
    seconds: float,
    connections: int,
    workdir: Path,
) -> list[Case]:
    """Every case on its servers, servers alternating within each round, after a warm-up."""
    results = [Case(name) for name in cases]
    for request, names in cases.values():
        for name in names:
            check_answer(servers[name], request)
            wrk(
                servers[name],
                request,
                seconds=min(2.0, seconds),
                connections=connections,
                workdir=workdir,
            )
    for index in range(1, rounds + 1):
        for (request, names), result in zip(cases.values(), results, strict=True):
            for name in names:
                run = wrk(
                    servers[name],
                    request,
                    seconds=seconds,
                    connections=connections,
                    workdir=workdir,
                )
                result.runs.setdefault(name, []).append(run)
                print(
                    f"  round {index} {result.name:<24}{name:<7}{run.rate:>9.0f} req/s"
                    f"  p50 {run.p50_ms:7.2f}  p95 {run.p95_ms:7.2f}  p99 {run.p99_ms:7.2f} ms"
                    f"  errors {run.errors}",
                    flush=True,
                )
    return results


@dataclass
class OpenLoop:
    """A constant-rate run: latency from each request's scheduled time."""

    rate: float
    seconds: float
    sent: int
    errors: int
    late_starts: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    live_p95_ms: float
    live_errors: int


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    """One request on a kept-alive connection; the whole response (length or chunked)."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    }
    if headers.get(b"transfer-encoding") == b"chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return status, bytes(body)
    return status, await reader.readexactly(int(headers.get(b"content-length", b"0")))


def _numbered(body: bytes) -> bytes:
    """``body`` as a format string whose one ``%d`` is the request's JSON-RPC id."""
    return body.replace(b"%", b"%%").replace(ID_MARK, b'"id": %d', 1)


def _raw(request: Request, headers: Mapping[str, str], number: int = 0) -> bytes:
    body = _numbered(request.body) % number if ID_MARK in request.body else request.body
    lines = [f"{request.method} {request.path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in {**request.headers, **headers}.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(server: Server, *, rate: float, seconds: float, pool: int) -> OpenLoop:
    """``rate`` requests a second of ``prompts/get`` on a pool of kept-alive connections,
    and ``/health/live`` ten times a second on a connection of its own."""
    live_raw = _raw(LIVE, {})
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(pool):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", server.port))
    latencies: list[float] = []
    live_latencies: list[float] = []
    errors = live_errors = late = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    total = int(rate * seconds)

    async def one(scheduled: float, number: int) -> None:
        nonlocal errors
        connection = await idle.get()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, body = await _exchange(
                    *connection, _raw(PROMPTS_GET, server.headers, number)
                )
            if status != 200 or PROMPTS_GET.expect not in body:
                errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
            errors += 1
            connection[1].close()
            connection = await asyncio.open_connection("127.0.0.1", server.port)
        latencies.append((loop.time() - scheduled) * 1000)
        idle.put_nowait(connection)

    async def probe() -> None:
        nonlocal live_errors
        connection = await asyncio.open_connection("127.0.0.1", server.port)
        for index in range(int(seconds * 10)):
            scheduled = start + index / 10
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, _ = await _exchange(*connection, live_raw)
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                status = 0
                connection[1].close()
                connection = await asyncio.open_connection("127.0.0.1", server.port)
            live_errors += status != 200
            live_latencies.append((loop.time() - scheduled) * 1000)
        connection[1].close()

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(probe())
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.001:
                late += 1  # the client itself fell behind; the latency still counts from here
            tasks.create_task(one(scheduled, index + 1))
    while not idle.empty():
        idle.get_nowait()[1].close()

    def pct(values: list[float], p: int) -> float:
        return statistics.quantiles(values, n=100)[p - 1]

    return OpenLoop(
        rate=rate,
        seconds=seconds,
        sent=total,
        errors=errors,
        late_starts=late,
        p50_ms=pct(latencies, 50),
        p95_ms=pct(latencies, 95),
        p99_ms=pct(latencies, 99),
        live_p95_ms=pct(live_latencies, 95),
        live_errors=live_errors,
    )


@contextmanager
def checkout(ref: str, workdir: Path) -> Iterator[Path]:
    """A detached worktree of ``ref`` in ``workdir``, removed afterwards."""
    tree = workdir / "before"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(tree), ref], check=True, timeout=60)
    try:
        yield tree
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False, timeout=60)


def bare2_python() -> Path:
    """The python of a venv with FastMCP 2.14.7 and this venv's uvicorn and FastAPI."""
    pins = (
        "fastmcp==2.14.7",
        f"uvicorn[standard]=={version('uvicorn')}",
        f"fastapi=={version('fastapi')}",
        "pyyaml",
        "jinja2",
    )
    return tool_python("bench-fastmcp2-venv", pins, install_timeout=900)


def _ratio_line(label: str, value: float | None, target: float) -> dict[str, Any]:
    met = value is not None and value >= target
    shown = "n/a" if value is None else f"{value:.2f}x"
    print(f"  {label:<44}{shown:>8}   target >= {target}x   {'met' if met else 'NOT MET'}")
    return {"value": value, "target": target, "met": met}


def _print_case(case: Case) -> None:
    for server in case.runs:
        print(
            f"  {case.name:<24}{server:<7}{case.median(server, 'rate'):>9.0f} req/s"
            f"  p50 {case.median(server, 'p50_ms'):7.2f}  p95 {case.median(server, 'p95_ms'):7.2f}"
            f"  p99 {case.median(server, 'p99_ms'):7.2f} ms"
            f"  errors {sum(r.errors for r in case.runs[server])}"
        )


def main(args: argparse.Namespace) -> int:
    """Run every part, print the tables and targets, write the JSON summary."""
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "versions": {"fastmcp": version("fastmcp"), "mcp": version("mcp"), "bare2": "2.14.7"},
        "settings": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "connections": args.connections,
            "open_rate": args.rate,
            "open_seconds": args.open_seconds,
        },
        "cases": {},
        "targets": {},
    }
    python2 = None if args.skip_bare2 else bare2_python()
    errors = 0
    with tempfile.TemporaryDirectory(prefix="ctxfy-bench-") as directory, ExitStack() as stack:
        workdir = Path(directory)
        before = stack.enter_context(checkout(args.before, workdir)) if args.before else None
        if args.before:
            summary["before"] = args.before
        measure = {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "connections": args.connections,
            "workdir": workdir,
        }
        references = ("bare", "bare2") if python2 else ("bare",)
        fulls = ("full", "before") if before else ("full",)
        everyone = (*references, *fulls)
        rss: dict[str, Any] = {}
        for stateless in (True, False):
            mode = "stateless" if stateless else "stateful"
            print(f"\n{mode}, 1 worker, wrk -t{WRK_THREADS} -c{args.connections}", flush=True)
            with started(workdir, python2, stateless=stateless, before=before) as servers:
                cases: dict[str, tuple[Request, tuple[str, ...]]] = {
                    f"prompts/get {mode}": (PROMPTS_GET, everyone),
                }
                if stateless:
                    cases["prompts/list stateless"] = (PROMPTS_LIST, everyone)
                    cases["REST preview"] = (PREVIEW, ("bare", *fulls))
                    cases["/health/live"] = (LIVE, ("bare", *fulls))
                full = servers["full"]
                check_answer(full, PROMPTS_GET)
                rss_before = full.rss_kib()
                results = closed_loop(servers, cases, **measure)
                served = sum(r.requests for case in results for r in case.runs.get("full", []))
                if not stateless:
                    print(
                        f"\nopen loop: {args.rate:g} req/s for {args.open_seconds:g} s", flush=True
                    )
                    loop = uvloop.run(
                        open_loop(full, rate=args.rate, seconds=args.open_seconds, pool=64)
                    )
                    served += loop.sent
                    summary["open_loop"] = asdict(loop)
                    errors += loop.errors + loop.live_errors
                # The leak check wants its count whatever this box's speed: more of the same.
                while served < args.leak_requests:
                    print(f"  leak check: {served} requests so far", flush=True)
                    more = wrk(
                        full,
                        PROMPTS_GET,
                        seconds=args.seconds,
                        connections=args.connections,
                        workdir=workdir,
                    )
                    served += more.requests
                    errors += more.errors
                rss[mode] = {
                    "before_kib": rss_before,
                    "after_kib": full.rss_kib(),
                    "requests": served,
                }
            for case in results:
                summary["cases"][case.name] = case.summary()
                errors += sum(r.errors for runs in case.runs.values() for r in runs)
            summary.setdefault("results", []).extend(results)

        print("\nstateless scaling: full, 1 and 2 workers", flush=True)
        scaling: dict[int, float] = {}
        for workers in (1, 2):
            with started(workdir, None, stateless=True, workers=workers) as servers:
                case = closed_loop(
                    {"full": servers["full"]},
                    {f"prompts/get {workers}w": (PROMPTS_GET, ("full",))},
                    **measure,
                )[0]
                scaling[workers] = case.median("full", "rate")
                errors += sum(r.errors for r in case.runs["full"])
        summary["scaling"] = {"1": scaling[1], "2": scaling[2]}

    results = summary.pop("results")
    print("\nmedians of rounds")
    for case in results:
        _print_case(case)
    by_name = {case.name: case for case in results}
    if args.before:
        print(f"\nthis tree against {args.before} (full / before, same rounds)")
        summary["against_before"] = {}
        for case in results:
            ratio = case.ratio("full", "before")
            if ratio is not None:
                summary["against_before"][case.name] = ratio
                print(f"  {case.name:<24}{ratio:>7.2f}x")
    print("\ntargets")
    targets = summary["targets"]
    for mode in ("stateless", "stateful"):
        case = by_name[f"prompts/get {mode}"]
        targets[f"prompts_get_{mode}_vs_bare"] = _ratio_line(
            f"prompts/get {mode}: full / bare", case.ratio("full", "bare"), 1.3
        )
        targets[f"prompts_get_{mode}_vs_bare2"] = _ratio_line(
            f"prompts/get {mode}: full / bare FastMCP 2.14",
            case.ratio("full", "bare2"),
            TARGETS["prompts_get_vs_bare2"],
        )
    targets["preview_vs_fastapi"] = _ratio_line(
        "REST preview: full / plain FastAPI",
        by_name["REST preview"].ratio("full", "bare"),
        TARGETS["preview_vs_fastapi"],
    )
    targets["workers_scaling"] = _ratio_line(
        "stateless full, 2 workers / 1 worker", scaling[2] / scaling[1], TARGETS["workers_scaling"]
    )
    loop = summary["open_loop"]
    for label, value, target in (
        ("open loop prompts/get p95 (ms)", loop["p95_ms"], TARGETS["open_loop_p95_ms"]),
        (
            "/health/live p95 under that load (ms)",
            loop["live_p95_ms"],
            TARGETS["live_p95_ms_under_load"],
        ),
    ):
        met = value <= target and loop["errors"] == 0
        targets[label] = {"value": value, "target": target, "met": met}
        print(f"  {label:<44}{value:>8.1f}   target <= {target}   {'met' if met else 'NOT MET'}")
    print(
        f"  open loop: {loop['sent']} sent, {loop['errors']} errors, p50 {loop['p50_ms']:.1f}"
        f" p99 {loop['p99_ms']:.1f} ms, client late {loop['late_starts']} times"
    )
    for mode, memory in rss.items():
        drift = memory["after_kib"] / memory["before_kib"] - 1
        met = abs(drift) <= TARGETS["rss_drift"] and memory["requests"] >= LEAK_REQUESTS
        memory |= {"drift": drift, "met": met}
        print(
            f"  RSS {mode}: {memory['before_kib'] / 1024:.0f} -> {memory['after_kib'] / 1024:.0f}"
            f" MiB over {memory['requests']} requests ({drift:+.1%}; target within"
            f" ±{TARGETS['rss_drift']:.0%} over >= {LEAK_REQUESTS:,})"
            f"   {'met' if met else 'NOT MET'}"
        )
    summary["rss"] = rss

    print("\nauthentication (scripts/bench_auth.py)", flush=True)
    auth = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_auth.py"),
            "--rounds",
            str(args.auth_rounds),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    print(auth.stdout.rstrip())
    summary["auth_output"] = auth.stdout
    summary["errors"] = errors

    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
        print(f"\nJSON summary: {args.json}")
    if errors or auth.returncode != 0:
        print(
            f"bench: {errors} failed requests, bench_auth exit {auth.returncode}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="closed-loop rounds (median)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per closed-loop run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests/second")
    parser.add_argument("--open-seconds", type=float, default=60.0)
    parser.add_argument("--skip-bare2", action="store_true", help="no FastMCP 2.14 reference")
    parser.add_argument("--auth-rounds", type=int, default=20_000, help="for bench_auth.py")
    parser.add_argument(
        "--leak-requests",
        type=int,
        default=100_000,
        help="requests the full server serves in each mode before its RSS is read again",
    )
    parser.add_argument("--json", help="where to write the JSON summary")
    parser.add_argument(
        "--before",
        metavar="REF",
        help="also run ctxfy serve at this git ref, alternating with this tree (full / before)",
    )
    sys.exit(main(parser.parse_args()))
