"""Slow clients against a real ``ctxfy serve``: stalled headers and idle connections are closed."""

import selectors
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import RunningServer, running_server

HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 1.0
MARGIN = 2.0  # seconds past a timeout by which the server must have acted
STALLED = 100
HALF_REQUEST = b"GET /v1/prompts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bear"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "CTXFY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "CTXFY_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
        "CTXFY_DRAIN_SECONDS": "0",
    }
    with running_server(tmp_path_factory.mktemp("slow-clients"), env) as started:
        yield started


def served(server: RunningServer) -> int:
    """The status of an ordinary authenticated request."""
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.base_url, timeout=5) as http:
        return http.get("/v1/prompts", headers=headers).status_code


def test_a_hundred_connections_stalled_mid_headers_are_closed_at_the_header_timeout(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = selectors.DefaultSelector()
    sent_at: dict[socket.socket, float] = {}
    answers: dict[socket.socket, bytes] = {}
    closed_after: dict[socket.socket, float] = {}
    try:
        for _ in range(STALLED):
            stalled = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            stalled.sendall(HALF_REQUEST)
            sent_at[stalled], answers[stalled] = time.monotonic(), b""
            stalled.setblocking(False)
            watch.register(stalled, selectors.EVENT_READ)

        during = served(server)
        all_held_while_served = not watch.select(timeout=0)

        deadline = max(sent_at.values()) + HEADER_TIMEOUT + MARGIN
        while len(closed_after) < STALLED and (remaining := deadline - time.monotonic()) > 0:
            for key, _ in watch.select(timeout=remaining):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                try:
                    chunk = conn.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    answers[conn] += chunk
                    continue
                closed_after[conn] = time.monotonic() - sent_at[conn]
                watch.unregister(conn)
    finally:
        watch.close()
        for conn in sent_at:
            conn.close()
    after = served(server)

    times = sorted(closed_after.values())
    timed_out = sum(a.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for a in answers.values())
    with capsys.disabled():  # the figure shows in the output, passing or not
        print(  # noqa: T201 — the test reports its figure
            f"\nslow clients: {len(times)}/{STALLED} stalled connections closed, "
            f"{timed_out} with 408, after {times[0] if times else 0:.2f}–"
            f"{times[-1] if times else 0:.2f} s (header timeout {HEADER_TIMEOUT:g} s)"
        )
    assert (during, all_held_while_served, after) == (200, True, 200)
    assert len(times) == STALLED
    assert timed_out == STALLED
    assert times[0] >= HEADER_TIMEOUT * 0.9  # closed by the deadline, not before it
    assert times[-1] <= HEADER_TIMEOUT + MARGIN


def test_a_kept_alive_connection_left_idle_is_closed_after_the_keep_alive_timeout(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=KEEP_ALIVE + MARGIN) as conn:
        conn.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response = b""
        while not response.endswith(b'{"status":"alive"}'):
            chunk = conn.recv(65536)
            assert chunk, f"closed before the response ended: {response!r}"
            response += chunk
        answered = time.monotonic()
        rest = conn.recv(65536)  # blocks until the server closes (or the socket timeout)
        idle = time.monotonic() - answered

    with capsys.disabled():
        print(f"\nkeep-alive: idle connection closed after {idle:.2f} s (timeout {KEEP_ALIVE:g} s)")  # noqa: T201 — the test reports its figure
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest == b""
    assert KEEP_ALIVE * 0.9 <= idle <= KEEP_ALIVE + MARGIN
