"""Guessing at a key on a real ``ctxfy serve``: the guesser's address is throttled (429 with
``Retry-After``) while the key's owner, on another address, gets in; and an unknown key id
costs the same time to refuse as a wrong secret for a known one."""

import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from domain.keys import PresentedKey, generate_key, parse_key
from tests.e2e.server import RunningServer, ctxfy, running_server

MAX_FAILURES = 10  # CTXFY_AUTH_MAX_FAILURES, the default
TIMEOUT = 30.0
TIMED_ATTEMPTS = 8  # per kind; below the per-(address, key id) limit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"CTXFY_AUTH_MAX_FAILURES": str(MAX_FAILURES), "CTXFY_DRAIN_SECONDS": "0"}
    with running_server(tmp_path_factory.mktemp("lockout"), env) as started:
        yield started


def client_from(server: RunningServer, address: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (any 127/8 address is local)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.base_url, transport=transport, timeout=TIMEOUT)


def guess_at(key: str) -> str:
    """The same key id with a secret that is not its own."""
    return PresentedKey(key_id=parse_key(key).key_id, secret=generate_key().secret).plaintext


def test_a_guesser_is_throttled_while_the_owner_on_another_address_gets_in(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # A new key, never used: no "verified here before" pass helps its owner.
    owner_key = ctxfy(server.env, "keys", "create", "--user", "owner", "--scope", "read").strip()
    with client_from(server, "127.0.0.2") as attacker, client_from(server, "127.0.0.1") as owner:
        tries = [
            attacker.get("/v1/prompts", headers={"X-API-Key": guess_at(owner_key)})
            for _ in range(MAX_FAILURES + 5)
        ]
        owners = owner.get("/v1/prompts", headers={"X-API-Key": owner_key})
        attackers_own_try = attacker.get("/v1/prompts", headers={"X-API-Key": owner_key})

    statuses = [response.status_code for response in tries]
    retry_after = {response.headers.get("retry-after") for response in tries[MAX_FAILURES:]}
    with capsys.disabled():
        print(  # noqa: T201 — the figure is the point
            f"\nlockout: attacker on 127.0.0.2 got {statuses.count(401)}×401 then "
            f"{statuses.count(429)}×429 (Retry-After {sorted(retry_after)} s); "
            f"owner on 127.0.0.1 got {owners.status_code}"
        )
    assert statuses == [401] * MAX_FAILURES + [429] * 5
    assert all(value is not None and 1 <= int(value) <= 60 for value in retry_after)
    assert tries[-1].json()["error"] == "too_many_failed_attempts"
    assert owners.status_code == 200
    # Once verified here, the whole key is proof enough from any address: the throttle
    # holds back guesses, never the key itself.
    assert attackers_own_try.status_code == 200


def test_an_unknown_key_id_takes_as_long_to_refuse_as_a_wrong_secret(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    known = ctxfy(server.env, "keys", "create", "--user", "timed", "--scope", "read").strip()
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    # Each kind from its own address, so neither reaches a throttle; interleaved, so both
    # see the same load on this machine.
    with client_from(server, "127.0.0.3") as first, client_from(server, "127.0.0.4") as second:
        for _ in range(TIMED_ATTEMPTS):
            for kind, client, presented in (
                ("unknown", first, generate_key().plaintext),
                ("wrong", second, guess_at(known)),
            ):
                started = time.perf_counter()
                response = client.get("/v1/prompts", headers={"X-API-Key": presented})
                timings[kind].append(time.perf_counter() - started)
                assert response.status_code == 401

    unknown, wrong = (statistics.median(timings[kind]) * 1000 for kind in ("unknown", "wrong"))
    with capsys.disabled():
        print(  # noqa: T201
            f"\nrefusal timing (median of {TIMED_ATTEMPTS}): unknown id {unknown:.1f} ms, "
            f"wrong secret {wrong:.1f} ms, ratio {unknown / wrong:.2f}"
        )
    # Before the dummy verification an unknown id was refused about 9x faster (3 vs 27 ms).
    assert 0.5 < unknown / wrong < 2.0
