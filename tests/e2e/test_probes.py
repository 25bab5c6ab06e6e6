"""Probes of a real ``ctxfy serve`` process while it drains after SIGTERM."""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import RunningServer, running_server

DRAIN_SECONDS = 3.0
# Beyond the drain: uvicorn's shutdown (its 0.1 s ticks, closing connections, the lifespan).
EXIT_BOUND = 10.0
TIMEOUT = 5.0


def poll_until_status(
    http: httpx.Client, path: str, status: int, deadline: float
) -> httpx.Response:
    """Request ``path`` again and again (each a real request) until it answers ``status``."""
    while True:
        response = http.get(path)
        if response.status_code == status:
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} still answers {response.status_code}, not {status}")


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def draining_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A server with a drain period, in one process or under uvicorn's supervisor."""
    env = {"CTXFY_DRAIN_SECONDS": str(DRAIN_SECONDS), "CTXFY_WORKERS": str(request.param)}
    with running_server(tmp_path, env) as server:
        yield server


def test_after_sigterm_the_server_is_not_ready_but_serves_until_the_drain_ends(
    draining_server: RunningServer,
) -> None:
    server = draining_server
    # A fresh connection per request, so that with several workers each may answer.
    with httpx.Client(
        base_url=server.base_url,
        timeout=TIMEOUT,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"Authorization": f"Bearer {server.key}"},
    ) as http:
        poll_until_status(http, "/health/ready", 200, time.monotonic() + TIMEOUT)

        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        not_ready = poll_until_status(http, "/health/ready", 503, signalled + DRAIN_SECONDS)
        live = http.get("/health/live")
        prompts = http.get("/v1/prompts")
        still_serving = time.monotonic() - signalled < DRAIN_SECONDS

    exit_code = server.process.wait(timeout=DRAIN_SECONDS + EXIT_BOUND)
    stopped_after = time.monotonic() - signalled

    assert still_serving
    assert not_ready.json()["status"] == "not_ready"
    assert {c["name"]: c["detail"] for c in not_ready.json()["checks"]}["lifecycle"] == (
        "draining before shutdown"
    )
    assert live.status_code == 200
    assert prompts.status_code == 200
    assert exit_code == 0
    assert DRAIN_SECONDS <= stopped_after < DRAIN_SECONDS + EXIT_BOUND


def test_a_second_sigterm_ends_the_drain_at_once(tmp_path: Path) -> None:
    long_drain = 60.0
    with (
        running_server(tmp_path, {"CTXFY_DRAIN_SECONDS": str(long_drain)}) as server,
        httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http,
    ):
        poll_until_status(http, "/health/ready", 200, time.monotonic() + TIMEOUT)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        poll_until_status(http, "/health/ready", 503, signalled + TIMEOUT)
        server.process.send_signal(signal.SIGTERM)

        exit_code = server.process.wait(timeout=EXIT_BOUND)

    assert exit_code == 0
    assert time.monotonic() - signalled < long_drain


def test_without_a_drain_period_sigterm_stops_the_server_at_once(tmp_path: Path) -> None:
    with (
        running_server(tmp_path, {"CTXFY_DRAIN_SECONDS": "0"}) as server,
        httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http,
    ):
        poll_until_status(http, "/health/ready", 200, time.monotonic() + TIMEOUT)
        server.process.send_signal(signal.SIGTERM)

        exit_code = server.process.wait(timeout=EXIT_BOUND)

    assert exit_code == 0
