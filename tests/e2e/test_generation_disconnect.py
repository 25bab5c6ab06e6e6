"""A REST client that gives up on a generation: the real server stops the upstream call."""

import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.catalog.loader import load_catalog
from tests.e2e.fake_llm import FakeLlm
from tests.e2e.server import RunningServer, running_server

PROMPT = "context_stack"
GENERATE = f"/v1/prompts/{PROMPT}/generate"
EXAMPLE = load_catalog().get(PROMPT).definition.example_arguments
OPERATOR_MODEL = "operator-model"
CLIENT_PATIENCE = 1.0  # seconds the client waits before it gives up
BOUND = 10.0


@pytest.fixture(scope="module")
def server(upstream: FakeLlm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "CTXFY_DRAIN_SECONDS": "0",
        "CTXFY_LLM_BASE_URL": upstream.base_url,
        "CTXFY_LLM_MODEL": OPERATOR_MODEL,
        # Far longer than the client waits: only the disconnect can end the call.
        "CTXFY_LLM_TIMEOUT_SECONDS": "60",
        "CTXFY_LLM_MAX_RETRIES": "2",
    }
    with running_server(tmp_path_factory.mktemp("disconnect"), env, scope="write") as started:
        yield started


def cancelled_generations(server: RunningServer) -> float:
    with httpx.Client(base_url=server.base_url, timeout=BOUND) as http:
        scraped = http.get("/metrics").text
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if (
                sample.name == "ctxfy_llm_requests_total"
                and sample.labels.get("outcome") == "cancelled"
            ):
                return sample.value
    return 0.0


def test_a_client_that_gives_up_cancels_the_upstream_call_and_is_logged_as_499(
    server: RunningServer, upstream: FakeLlm, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.hang()
    request_id = "e2e-gives-up-0001"
    headers = {"Authorization": f"Bearer {server.key}", "X-Request-ID": request_id}
    with (
        httpx.Client(base_url=server.base_url, timeout=CLIENT_PATIENCE) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post(GENERATE, json=EXAMPLE, headers=headers)

    line = server.wait_for_line(
        lambda text: f'"request_id":"{request_id}"' in text and '"event":"request"' in text,
        timeout=BOUND,
    )
    assert upstream.wait_for_hang_up(timeout=BOUND), "the upstream connection stayed open"
    access = json.loads(line)
    assert access["status"] == 499
    assert (access["llm_route"], access["llm_error"]) == ("server", "client_disconnected")
    assert access["latency_ms"] < BOUND * 1000
    assert len(upstream.requests) == 1  # no retry was made for a caller who had left
    assert cancelled_generations(server) == 1
    cancelled = server.wait_for_line(
        lambda text: '"event":"generation_cancelled"' in text and request_id in text,
        timeout=BOUND,
    )
    assert json.loads(cancelled)["prompt"] == PROMPT
    with capsys.disabled():
        print(  # noqa: T201 — the test reports its figure
            f"\ndisconnect: client gave up after {CLIENT_PATIENCE:g} s; the server logged 499 "
            f"at {access['latency_ms']:.0f} ms and closed its upstream connection"
        )
