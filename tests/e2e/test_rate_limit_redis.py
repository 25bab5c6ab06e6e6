"""One rate limit held by two real ``ctxfy serve`` processes sharing a real ``redis-server``;
then Redis stops, and each process answers as its fail mode says, never with a 500."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import RunningServer, running_server
from tests.mcp_messages import ACCEPT, initialize
from tests.redis_server import RedisServer, running_redis

LIMIT = 4
TIMEOUT = 5.0
UNAVAILABLE = "rate_limit_store_unavailable"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis(directory) as server:
        yield server


@pytest.fixture
def servers(tmp_path: Path, redis: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two processes on one key store and one Redis: the first fails open, the second closed."""
    env = {
        "CTXFY_REDIS_URL": redis.url,
        # A day-long window: the test cannot run across its end, so the count is exact.
        "CTXFY_RATE_LIMIT_READ": f"{LIMIT}/day",
        "CTXFY_DRAIN_SECONDS": "0",
    }
    with (
        running_server(tmp_path, {**env, "CTXFY_RATE_LIMIT_FAIL_OPEN": "true"}) as opening,
        running_server(
            tmp_path, {**env, "CTXFY_RATE_LIMIT_FAIL_OPEN": "false"}, key=opening.key
        ) as closing,
    ):
        yield opening, closing


def client(server: RunningServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        timeout=TIMEOUT,
        headers={"Authorization": f"Bearer {server.key}"},
    )


def json_lines(server: RunningServer) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.lines if line.startswith("{")]


def test_two_processes_hold_one_limit_and_each_keeps_its_fail_mode_when_redis_stops(
    servers: tuple[RunningServer, RunningServer], redis: RedisServer
) -> None:
    opening, closing = servers
    with client(opening) as first, client(closing) as second:
        alternating = [(first if turn % 2 == 0 else second).get("/v1/prompts") for turn in range(6)]
        mcp_refused = second.post("/mcp", json=initialize(), headers=ACCEPT)

        redis.stop()
        open_answer = first.get("/v1/prompts")
        closed_answer = second.get("/v1/prompts")
        closed_mcp = second.post("/mcp", json=initialize(), headers=ACCEPT)
        again_open = first.get("/v1/prompts")

    assert [r.status_code for r in alternating] == [200] * LIMIT + [429, 429]
    assert [r.headers["ratelimit-remaining"] for r in alternating] == ["3", "2", "1", "0", "0", "0"]
    assert all(int(r.headers["retry-after"]) >= 1 for r in alternating[LIMIT:])
    assert alternating[-1].json()["error"] == "rate_limited"
    assert mcp_refused.status_code == 429
    assert mcp_refused.json()["error"]["code"] == -32029

    # Fail open: served without a limit (and without RateLimit headers).
    assert [open_answer.status_code, again_open.status_code] == [200, 200]
    assert "ratelimit-limit" not in open_answer.headers
    # Fail closed: 503 with Retry-After, over REST and MCP alike.
    assert closed_answer.status_code == 503
    assert closed_answer.json()["error"] == "rate_limit_unavailable"
    assert closed_answer.headers["retry-after"] == "5"
    assert closed_mcp.status_code == 503
    assert closed_mcp.json()["error"]["code"] == -32053

    for server in (opening, closing):
        server.wait_for_line(lambda line: UNAVAILABLE in line)
        lines = json_lines(server)
        warnings = [x for x in lines if x.get("event") == UNAVAILABLE]
        assert [(x["level"], x["error"]) for x in warnings] == [("warning", "ConnectionError")]
        statuses = [x["status"] for x in lines if x.get("event") == "request"]
        assert 500 not in statuses
        assert not [x for x in lines if x.get("event") == "unhandled_error"]
