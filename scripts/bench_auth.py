"""Per-request cost of authentication: cache hit, first use, and invalid keys.

Measures the authenticator alone and through the pure-ASGI auth middleware (in process,
no sockets), with production argon2 parameters and a real SQLite key store in a temporary
directory. Prints microseconds per request and argon2 verifications per case.

    uv run python scripts/bench_auth.py [--rounds N]

Targets: a cache hit costs <= 50 us; a malformed key costs no argon2 call; an unknown key id
costs the same one verification as a wrong secret.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from starlette.types import Message, Receive, Send
from starlette.types import Scope as AsgiScope

from app.http.auth import AuthMiddleware
from app.services.authenticator import AuthenticationFailed, Authenticator, AuthPolicy
from app.services.keys import KeyService
from domain.keys import PresentedKey, Scope, generate_key
from infrastructure.hashing import Argon2KeyHasher
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.logging import configure_logging
from infrastructure.metrics import Metrics

TARGET_HIT_US = 50.0


async def _ok(scope: AsgiScope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


def _scope(key: str) -> AsgiScope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/v1/prompts",
        "raw_path": b"/v1/prompts",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {key}".encode())],
    }


async def _time(rounds: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        await call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=20)[-1]


def verifications(metrics: Metrics) -> float:
    """argon2 verifications counted so far."""
    return metrics.registry.get_sample_value("ctxfy_auth_verifications_total") or 0.0


async def _refused(authenticator: Authenticator, key: str) -> None:
    try:
        await authenticator.authenticate(key)
    except AuthenticationFailed:
        return
    raise AssertionError("expected a refusal")


async def main(rounds: int) -> None:
    configure_logging(level="WARNING", fmt="console")  # keys are made by the dozen: no audit lines
    with tempfile.TemporaryDirectory() as directory:
        store = SqlKeyStore(f"sqlite:///{Path(directory) / 'keys.db'}")
        await store.start()
        hasher = Argon2KeyHasher()
        metrics = Metrics(version="bench")
        authenticator = Authenticator(
            store,
            hasher,
            # Refusals are measured by the thousand from one source: never throttled here.
            AuthPolicy(max_failures=10**9, max_failures_per_source=10**9),
            metrics=metrics,
        )
        keys = KeyService(store, hasher, authenticator=authenticator)
        issued = await keys.create(user_id="bench", scope=Scope.READ)
        middleware = AuthMiddleware(_ok, authenticator)
        good = issued.plaintext
        unknown = generate_key().plaintext
        wrong = PresentedKey(key_id=issued.info.key_id, secret=generate_key().secret).plaintext
        malformed = good[:-1] + ("1" if good[-1] != "1" else "2")

        print(f"{'case':<34}{'median us':>12}{'p95 us':>10}{'argon2/req':>12}")

        async def report(label: str, call: Callable[[], Awaitable[object]], n: int) -> float:
            before = verifications(metrics)
            median, p95 = await _time(n, call)
            per = (verifications(metrics) - before) / n
            print(f"{label:<34}{median:>12.1f}{p95:>10.1f}{per:>12.2f}")
            return median

        first_uses = []
        for _ in range(min(rounds, 20)):
            fresh = (await keys.create(user_id="bench", scope=Scope.READ)).plaintext
            started = time.perf_counter_ns()
            await authenticator.authenticate(fresh)
            first_uses.append((time.perf_counter_ns() - started) / 1000)
        print(
            f"{'first use (argon2 + store)':<34}{statistics.median(first_uses):>12.1f}"
            f"{max(first_uses):>10.1f}{1:>12.2f}"
        )

        await authenticator.authenticate(good)
        hit = await report(
            "cache hit: authenticator", lambda: authenticator.authenticate(good), rounds
        )
        hit_mw = await report(
            "cache hit: ASGI middleware",
            lambda: middleware(_scope(good), _receive, _discard),
            rounds,
        )
        await report("malformed (bad checksum)", lambda: _refused(authenticator, malformed), rounds)
        # An unknown id costs a dummy argon2 verification, as a wrong secret does, so the
        # time of a refusal does not tell which ids exist.
        await report(
            "unknown key id (dummy argon2)",
            lambda: _refused(authenticator, unknown),
            min(rounds, 20),
        )
        await report(
            "wrong secret (argon2)", lambda: _refused(authenticator, wrong), min(rounds, 20)
        )
        await report(
            "no credential: ASGI middleware",
            lambda: middleware({**_scope(good), "headers": []}, _receive, _discard),
            rounds,
        )
        await store.close()

    verdict = "within" if max(hit, hit_mw) <= TARGET_HIT_US else "OVER"
    print(
        f"\ncache-hit target {TARGET_HIT_US:.0f} us: {verdict} "
        f"(authenticator {hit:.1f} us, through middleware {hit_mw:.1f} us)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20_000)
    anyio.run(main, parser.parse_args().rounds)
