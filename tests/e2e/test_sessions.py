"""Stateful MCP sessions on a real ``ctxfy serve``: a key cannot hold more than its cap (and
memory stays bounded however many it asks for), and revoking a key closes its open event
streams, at once in the revoking process and within the auth cache TTL from another one."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from domain.keys import parse_key
from tests.e2e.server import RunningServer, ctxfy, running_server
from tests.mcp_messages import ACCEPT, initialize

PER_KEY = 16
ATTEMPTS = 200
TTL_SECONDS = 1
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "CTXFY_MCP_STATELESS": "false",
        "CTXFY_MCP_MAX_SESSIONS_PER_KEY": str(PER_KEY),
        "CTXFY_AUTH_CACHE_TTL_SECONDS": str(TTL_SECONDS),
        "CTXFY_DRAIN_SECONDS": "0",
    }
    with running_server(tmp_path_factory.mktemp("sessions"), env, scope="admin") as started:
        yield started


def rss_kib(pid: int) -> int:
    """The process's resident set size, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS line")


def new_key(server: RunningServer, scope: str = "read") -> str:
    return ctxfy(server.env, "keys", "create", "--user", "sessions", "--scope", scope).strip()


def open_session(http: httpx.Client, key: str) -> httpx.Response:
    return http.post(
        "/mcp", json=initialize("ctxfy-e2e-sessions"), headers={**ACCEPT, "X-API-Key": key}
    )


class OpenStream:
    """A ``GET /mcp`` event stream of one session, read on a thread until the server ends it."""

    def __init__(self, server: RunningServer, key: str) -> None:
        self.http = httpx.Client(base_url=server.base_url, timeout=TIMEOUT)
        opened = open_session(self.http, key)
        assert opened.status_code == 200
        self.headers = {
            "accept": "text/event-stream",
            "X-API-Key": key,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-06-18",
        }
        self.started = threading.Event()
        self.ended = threading.Event()
        self.status: int | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.started.wait(TIMEOUT), "the event stream did not open"

    def _read(self) -> None:
        try:
            with self.http.stream("GET", "/mcp", headers=self.headers) as response:
                self.status = response.status_code
                self.started.set()
                for _ in response.iter_raw():
                    pass
        except httpx.HTTPError:
            pass  # the server closed it mid-stream: ended all the same
        finally:
            self.started.set()
            self.ended.set()

    def close(self) -> None:
        self.http.close()
        self.thread.join(timeout=TIMEOUT)


def test_a_key_holds_at_most_its_session_cap_and_memory_stays_bounded(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    key = new_key(server)
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        first = open_session(http, key).status_code  # after argon2's first 19 MiB working set
        before = rss_kib(server.process.pid)
        statuses = [first] + [open_session(http, key).status_code for _ in range(ATTEMPTS - 1)]
        grown = rss_kib(server.process.pid) - before
        other = open_session(http, new_key(server)).status_code  # argon2 again: measured before

    with capsys.disabled():  # the test's figure shows in CI's output
        print(  # noqa: T201 — the figure is the point
            f"\nsessions: {statuses.count(200)} held, {statuses.count(429)} refused of "
            f"{ATTEMPTS} opened by one key; RSS {before // 1024} MiB, +{grown} KiB"
        )
    assert statuses.count(200) == PER_KEY
    assert statuses.count(429) == ATTEMPTS - PER_KEY
    assert other == 200  # another key is not affected
    assert grown < 10 * 1024  # 15 more sessions, not 199 (about 60 KB each, plus slack)


@pytest.mark.parametrize("revoked_by", ["this server (REST)", "another process (CLI)"])
def test_revoking_a_key_closes_its_open_event_stream(
    server: RunningServer, revoked_by: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = new_key(server)
    stream = OpenStream(server, key)
    try:
        assert stream.status == 200
        assert not stream.ended.wait(1.5)  # it stays open (keep-alive) while the key is valid
        key_id = parse_key(key).key_id
        if revoked_by.startswith("this server"):
            revoked = httpx.post(
                f"{server.base_url}/v1/keys/{key_id}/revoke",
                headers={"X-API-Key": server.key},
                timeout=TIMEOUT,
            )
            assert revoked.status_code == 200
        else:
            ctxfy(server.env, "keys", "revoke", key_id)
        started = time.monotonic()  # the key is revoked in the shared store from here on
        assert stream.ended.wait(TIMEOUT), "the stream stayed open after revocation"
        took = time.monotonic() - started
    finally:
        stream.close()

    with capsys.disabled():
        print(f"\nrevoked by {revoked_by}: stream closed in {took:.2f} s")  # noqa: T201
    # Here at once (before the REST answer); from elsewhere within one sweep period (the TTL).
    assert took < (1.0 if revoked_by.startswith("this server") else TTL_SECONDS + 2.0)
