"""The rate-limit adapter over `limits`: in memory, and against a real ``redis-server``."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from domain.rate_limits import Bucket, RateDecision, RateLimitUnavailable
from infrastructure import rate_limit
from infrastructure.metrics import Metrics
from infrastructure.rate_limit import (
    UNAVAILABLE_RETRY_AFTER,
    KeyRateLimiter,
    memory_storage,
    redis_storage,
)
from tests.fakes import Clock
from tests.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """``configure_logging`` caches a logger on first use; one cached during an earlier test
    would write past ``capture_logs``, so the module's logger is fetched afresh."""
    monkeypatch.setattr(rate_limit, "logger", structlog.get_logger(rate_limit.__name__))


# Day-long windows: no test runs across one's end, so every count below is exact.
RATES: dict[Bucket, str | None] = {
    Bucket.READ: "3/day",
    Bucket.WRITE: None,
    Bucket.GENERATE: "2/day",
}


def allowed(decision: RateDecision | None) -> bool:
    """Whether a limit counted the request and let it through."""
    assert decision is not None, "the limit decided nothing"
    return decision.allowed


def errors_counted(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("ctxfy_rate_limit_errors_total") or 0.0


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, which it may stop and start again."""
    with running_redis(tmp_path) as server:
        yield server


@asynccontextmanager
async def on_redis(
    url: str, *, fail_open: bool = True, clock: Clock | None = None, metrics: Metrics | None = None
) -> AsyncIterator[KeyRateLimiter]:
    """A limiter with a connection pool of its own, as each worker process has."""
    storage, close = redis_storage(url)
    time = clock or Clock()
    try:
        yield KeyRateLimiter(
            RATES,
            storage,
            fail_open=fail_open,
            metrics=metrics or Metrics(version="test"),
            clock=lambda: time.mono,
        )
    finally:
        await close()


async def test_in_memory_the_limit_is_allowed_then_refused_with_when_to_retry() -> None:
    limiter = KeyRateLimiter(RATES, memory_storage(), fail_open=True, metrics=Metrics(version="t"))

    decisions = [await limiter.hit(Bucket.READ, "key-a") for _ in range(4)]

    assert [d.allowed if d else None for d in decisions] == [True, True, True, False]
    assert [d.remaining if d else None for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused is not None
    assert refused.limit == 3
    assert 1 <= refused.retry_after <= 86_400


async def test_each_key_and_each_bucket_counts_alone() -> None:
    limiter = KeyRateLimiter(RATES, memory_storage(), fail_open=True, metrics=Metrics(version="t"))
    for _ in range(2):
        await limiter.hit(Bucket.GENERATE, "key-a")

    spent = await limiter.hit(Bucket.GENERATE, "key-a")
    other_key = await limiter.hit(Bucket.GENERATE, "key-b")
    other_bucket = await limiter.hit(Bucket.READ, "key-a")

    assert not allowed(spent)
    assert allowed(other_key)
    assert allowed(other_bucket)


async def test_a_bucket_that_is_off_counts_nothing() -> None:
    limiter = KeyRateLimiter(RATES, memory_storage(), fail_open=True, metrics=Metrics(version="t"))

    assert [await limiter.hit(Bucket.WRITE, "key-a") for _ in range(10)] == [None] * 10


async def test_two_limiters_on_one_redis_share_the_limit_under_concurrent_requests(
    shared_redis: RedisServer,
) -> None:
    allowed: list[bool] = []

    async def spend(limiter: KeyRateLimiter) -> None:
        decision = await limiter.hit(Bucket.READ, "key-shared")
        assert decision is not None
        allowed.append(decision.allowed)

    async with on_redis(shared_redis.url) as first, on_redis(shared_redis.url) as second:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for turn in range(20):
                    tasks.start_soon(spend, first if turn % 2 else second)

    assert sorted(allowed) == [False] * 17 + [True] * 3


async def test_a_redis_that_is_down_fails_open_logged_once_and_counted_every_time(
    redis: RedisServer,
) -> None:
    metrics, clock = Metrics(version="test"), Clock()
    async with on_redis(redis.url, clock=clock, metrics=metrics) as limiter:
        assert await limiter.hit(Bucket.READ, "key-a") is not None
        redis.stop()
        with capture_logs() as logs, anyio.fail_after(10):
            during = [await limiter.hit(Bucket.READ, "key-a") for _ in range(3)]

    assert during == [None, None, None]
    assert errors_counted(metrics) == 3
    assert [(log["event"], log["log_level"]) for log in logs] == [
        ("rate_limit_store_unavailable", "warning")
    ]
    assert logs[0]["error"] == "ConnectionError"
    assert logs[0]["fail_open"] is True
    assert "exc_info" not in logs[0]


async def test_a_redis_that_is_down_fails_closed_when_told_to(redis: RedisServer) -> None:
    metrics = Metrics(version="test")
    async with on_redis(redis.url, fail_open=False, metrics=metrics) as limiter:
        redis.stop()
        with pytest.raises(RateLimitUnavailable) as refused, anyio.fail_after(10):
            await limiter.hit(Bucket.GENERATE, "key-a")

    assert refused.value.retry_after == UNAVAILABLE_RETRY_AFTER
    assert errors_counted(metrics) == 1


async def test_the_store_is_tried_again_after_a_pause_and_its_recovery_is_logged(
    redis: RedisServer,
) -> None:
    clock = Clock()
    async with on_redis(redis.url, clock=clock) as limiter:
        redis.stop()
        with anyio.fail_after(10):
            assert await limiter.hit(Bucket.READ, "key-a") is None
            redis.start()
            # Still within the pause: decided without asking the store, which is back.
            assert await limiter.hit(Bucket.READ, "key-a") is None
            clock.advance(1.5)
            with capture_logs() as logs:
                recovered = await limiter.hit(Bucket.READ, "key-a")
                after = await limiter.hit(Bucket.READ, "key-a")

    assert allowed(recovered)
    assert allowed(after)
    assert after is not None
    assert after.remaining == 1
    assert [log["event"] for log in logs] == ["rate_limit_store_recovered"]
