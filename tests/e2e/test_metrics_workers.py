"""``/metrics`` of a real ``ctxfy serve --workers 2``: every scrape counts every worker.

Which worker accepts a connection is the kernel's choice, so traffic is sent in rounds of
parallel fresh connections until each worker has served some (bounded by a deadline).
Each worker's share is read from its own value file in ``PROMETHEUS_MULTIPROC_DIR``.
A worker counts a request just after its response is sent, so counts are read until they
settle (bounded) before any scrape is compared with them.
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.metrics import MULTIPROC_ENV
from tests.e2e.server import running_server

WORKERS = 2
ROUND = 16  # requests per round, all on fresh connections
PARALLEL = 8
SPREAD_TIMEOUT = 60.0  # includes the second worker's start-up
TIMEOUT = 10.0
COUNTED = "/v1/prompts"
MARKER = "/not-a-route"  # counted under the handler "none", not under COUNTED
STALE_COUNT = 1000
# A dead process's file, as an earlier run would leave it: summed into every scrape
# unless `ctxfy serve` empties the directory before its workers start.
STALE = f"""
from prometheus_client import Counter
Counter("http_requests", "stale", ["method", "status", "handler"]).labels(
    "GET", "2xx", {COUNTED!r}
).inc({STALE_COUNT})
"""


def leave_stale_counts(directory: Path) -> list[Path]:
    subprocess.run(
        [sys.executable, "-c", STALE],
        env={**os.environ, MULTIPROC_ENV: str(directory)},
        check=True,
        timeout=TIMEOUT,
    )
    return list(directory.glob("counter_*.db"))


def http_requests(samples: CollectorRegistry, handler: str) -> float:
    return sum(
        sample.value
        for metric in samples.collect()
        for sample in metric.samples
        if sample.name == "http_requests_total" and sample.labels["handler"] == handler
    )


def per_worker(directory: Path, scratch: Path, handler: str) -> dict[int, float]:
    """Requests to ``handler`` by worker pid, each read alone from its own counter file."""
    counts: dict[int, float] = {}
    for values in directory.glob("counter_*.db"):
        alone = scratch / values.stem
        alone.mkdir(exist_ok=True)
        shutil.copy(values, alone / values.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]  # unannotated upstream
        counts[int(values.stem.removeprefix("counter_"))] = http_requests(registry, handler)
    return counts


def in_rounds_until_every_worker_served(
    request: Callable[[], None], served: Callable[[], dict[int, float]]
) -> int:
    """Send rounds of ``request`` until ``served`` shows each worker served some; the count."""
    sent = 0
    deadline = time.monotonic() + SPREAD_TIMEOUT
    with ThreadPoolExecutor(PARALLEL) as pool:
        while time.monotonic() < deadline:
            for _ in pool.map(lambda _: request(), range(ROUND)):
                sent += 1
            if sum(1 for count in served().values() if count) >= WORKERS:
                return sent
    pytest.fail(f"{sent} requests in {SPREAD_TIMEOUT}s never reached {WORKERS} workers")


def settled(read: Callable[[], float], expected: float) -> float:
    """``read()`` once it returns ``expected``, or its last answer after ``TIMEOUT``."""
    deadline = time.monotonic() + TIMEOUT
    while (value := read()) != expected and time.monotonic() < deadline:
        pass
    return value


def scraped_total(text: str, handler: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels["handler"] == handler
    )


def test_every_scrape_counts_the_requests_every_worker_served(tmp_path: Path) -> None:
    directory, scratch = tmp_path / "prometheus", tmp_path / "scratch"
    directory.mkdir()
    scratch.mkdir()
    stale = leave_stale_counts(directory)
    env = {
        MULTIPROC_ENV: str(directory),
        "CTXFY_WORKERS": str(WORKERS),
        "CTXFY_ARGON2_TIME_COST": "1",
        "CTXFY_ARGON2_MEMORY_COST_KIB": "1024",
    }
    scrapes: list[float] = []

    with running_server(tmp_path, env) as server:
        assert stale
        assert not any(path.exists() for path in stale), (
            "ctxfy serve must call prepare_multiprocess_dir()"
        )

        def counted() -> None:
            with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
                response = http.get(COUNTED, headers={"Authorization": f"Bearer {server.key}"})
            assert response.status_code == 200

        def scrape_then_mark() -> None:
            # The marker rides the scrape's kept-alive connection, so it is counted by
            # the worker that answered the scrape.
            with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
                scrape = http.get("/metrics")
                http.get(MARKER)
            assert scrape.status_code == 200
            scrapes.append(scraped_total(scrape.text, COUNTED))

        sent = in_rounds_until_every_worker_served(
            counted, lambda: per_worker(directory, scratch, COUNTED)
        )
        total = settled(lambda: sum(per_worker(directory, scratch, COUNTED).values()), sent)
        assert total == sent

        in_rounds_until_every_worker_served(
            scrape_then_mark, lambda: per_worker(directory, scratch, "none")
        )
        assert set(scrapes) == {sent}

    assert not list(directory.glob("gauge_live*.db")), "every worker marks itself dead on exit"
