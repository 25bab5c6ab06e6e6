"""``/metrics`` of an app built by ``create_app()``, scraped and parsed after real traffic."""

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp.tools import Tool
from mcp import MCPError
from mcp.types import INVALID_PARAMS
from prometheus_client.parser import text_string_to_metric_families

from app.bootstrap import package_version
from app.http.http_metrics import MAX_REMEMBERED, RouteLabels
from app.main import create_app
from app.settings import Settings
from app.state import AppState
from domain.rate_limits import Bucket
from infrastructure.metrics import MULTIPROC_ENV, Metrics, prepare_multiprocess_dir
from tests.api.harness import bearer, issue_key, mcp_over_http

pytestmark = pytest.mark.anyio

CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}
type Labels = dict[str, str]


@pytest.fixture(autouse=True)
def _hermetic(hermetic_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic settings (``tests/conftest.py``), and single-process metrics."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


def instrument(app: FastAPI) -> Metrics:
    """The metrics ``create_app`` wired into ``app``: the wiring itself is under test."""
    state: AppState = app.state.ctxfy
    return state.metrics


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings())


@pytest.fixture
def metrics(app: FastAPI) -> Metrics:
    return instrument(app)


@pytest.fixture
async def client(app: FastAPI, metrics: Metrics) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the running app, sending a read key."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ctxfy") as client,
    ):
        client.headers.update(bearer(await issue_key(app)))
        yield client


class Scrape:
    """One parsed ``/metrics`` answer."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, metric: str, /, **labels: str) -> float:
        """The sum of ``metric``'s samples whose labels include ``labels``."""
        return sum(
            value
            for sample, found, value in self.samples
            if sample == metric and labels.items() <= found.items()
        )

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value ``label`` takes in ``name``'s samples."""
        return {found[label] for sample, found, _ in self.samples if sample == name}

    def labelled(self, metric: str, *labels: str) -> dict[tuple[str, ...], float]:
        """``metric``'s samples by the values of ``labels``, in that order."""
        return {
            tuple(found[label] for label in labels): value
            for sample, found, value in self.samples
            if sample == metric
        }


async def scrape(client: httpx.AsyncClient) -> Scrape:
    with anyio.fail_after(10):
        response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    return Scrape(response.text)


async def test_http_requests_are_labelled_by_route_template_not_by_path(
    client: httpx.AsyncClient,
) -> None:
    with anyio.fail_after(10):
        for name in ("adr", "context_stack", "no_such_prompt"):
            await client.get(f"/v1/prompts/{name}")
        await client.post("/v1/prompts/context_stack/preview", json=CONTEXT_STACK)

    scraped = await scrape(client)
    handlers = scraped.label_values("http_requests_total", "handler")
    assert handlers == {"/v1/prompts/{name}", "/v1/prompts/context_stack/preview"}
    assert scraped.value("http_requests_total", handler="/v1/prompts/{name}", status="2xx") == 2
    assert scraped.value("http_requests_total", handler="/v1/prompts/{name}", status="4xx") == 1
    assert scraped.value("http_request_duration_seconds_count", method="GET") == 3


async def test_unknown_paths_share_one_handler_label_whatever_their_number(
    client: httpx.AsyncClient,
) -> None:
    with anyio.fail_after(10):
        for path in ("/nope", "/nope/1", "/v1/prompts/a/", "/v1/prompts/b/", "/v1/keys/c/"):
            await client.get(path)

    scraped = await scrape(client)
    # One slash away from a route is still no route (Starlette would redirect it).
    assert scraped.label_values("http_requests_total", "handler") == {"none"}
    assert scraped.value("http_requests_total", handler="none") == 5


async def test_health_probes_and_scrapes_are_not_instrumented(
    client: httpx.AsyncClient,
) -> None:
    with anyio.fail_after(10):
        for path in ("/health", "/health/live", "/health/ready", "/metrics"):
            await client.get(path)

    scraped = await scrape(client)
    assert scraped.value("http_requests_total") == 0


async def test_metrics_is_public_text_and_not_in_the_openapi_document(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    with anyio.fail_after(10):
        response = await client.get("/metrics", headers={"Authorization": ""})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "/metrics" not in app.openapi()["paths"]


@pytest.mark.parametrize("path", ["/mcp", "/mcp/"])
async def test_mcp_over_http_is_one_handler_whichever_path_the_client_uses(
    app: FastAPI, client: httpx.AsyncClient, path: str
) -> None:
    with anyio.fail_after(10):
        async with mcp_over_http(app, path, key=await issue_key(app)) as mcp:
            await mcp.list_prompts()

    scraped = await scrape(client)
    assert scraped.label_values("http_requests_total", "handler") == {"/mcp"}
    assert scraped.value("http_requests_total", handler="/mcp", method="POST", status="2xx") >= 2


@pytest.mark.parametrize(
    ("mode", "opening"), [("legacy", "initialize"), ("auto", "server/discover")]
)
async def test_mcp_requests_are_counted_by_method_bounded_name_and_outcome(
    app: FastAPI, client: httpx.AsyncClient, mode: str, opening: str
) -> None:
    with anyio.fail_after(10):
        async with mcp_over_http(app, key=await issue_key(app), mode=mode) as mcp:
            await mcp.list_prompts()
            await mcp.get_prompt("context_stack", CONTEXT_STACK)
            for name, arguments in [("context_stack", {}), ("x" * 64, CONTEXT_STACK)]:
                with pytest.raises(MCPError) as refused:
                    await mcp.get_prompt(name, arguments)
                # Counting changes nothing the client sees.
                assert refused.value.error.code == INVALID_PARAMS

    scraped = await scrape(client)
    assert scraped.labelled("ctxfy_mcp_requests_total", "method", "name", "outcome") == {
        (opening, "", "ok"): 1,
        ("prompts/list", "", "ok"): 1,
        ("prompts/get", "context_stack", "ok"): 1,
        ("prompts/get", "context_stack", "error"): 1,
        ("prompts/get", "unknown", "error"): 1,
    }
    assert scraped.value("ctxfy_mcp_request_duration_seconds_count", method="prompts/get") == 3
    assert scraped.value("ctxfy_mcp_request_duration_seconds_sum", method="prompts/get") > 0


async def test_tool_calls_are_named_only_when_the_server_has_the_tool(
    app: FastAPI, metrics: Metrics, client: httpx.AsyncClient
) -> None:
    def explode() -> str:
        raise ToolError("it broke")

    server = app.state.ctxfy.mcp
    server.add_tool(Tool.from_function(explode))
    with anyio.fail_after(10):
        async with Client(server) as mcp:
            with pytest.raises(ToolError, match="it broke"):
                await mcp.call_tool("explode", {})
            with pytest.raises(ToolError):
                await mcp.call_tool("no_such_tool", {})

    scraped = await scrape(client)
    assert scraped.value("ctxfy_mcp_requests_total", method="tools/call", name="explode") == 1
    assert scraped.value("ctxfy_mcp_requests_total", method="tools/call", name="unknown") == 1
    assert scraped.value("ctxfy_mcp_requests_total", method="tools/call", outcome="ok") == 0


async def test_auth_failures_are_counted_by_reason(
    metrics: Metrics, client: httpx.AsyncClient
) -> None:
    for reason in ("missing", "missing", "wrong_secret"):
        metrics.auth_failed(reason)

    scraped = await scrape(client)
    assert scraped.labelled("ctxfy_auth_failures_total", "reason") == {
        ("missing",): 2,
        ("wrong_secret",): 1,
    }


async def test_refused_credentials_are_counted_by_reason_and_as_requests(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    with anyio.fail_after(10):
        await client.get("/v1/prompts", headers={"Authorization": ""})
        await client.get("/v1/prompts", headers={"Authorization": "Bearer not-a-key"})

    scraped = await scrape(client)
    assert scraped.labelled("ctxfy_auth_failures_total", "reason") == {
        ("missing",): 1,
        ("malformed",): 1,
    }
    assert scraped.value("http_requests_total", handler="/v1/prompts", status="4xx") == 2


async def test_rate_limits_and_llm_calls_are_counted_with_their_tokens(
    metrics: Metrics, client: httpx.AsyncClient
) -> None:
    metrics.rate_limited(Bucket.GENERATE)
    metrics.rate_limit_error()
    metrics.llm_request("openai", "gpt-4o-mini", "ok", 1.5, 120, 30)
    metrics.llm_request("openai", "gpt-4o-mini", "error", 0.2, 120, 0)

    scraped = await scrape(client)
    assert scraped.labelled("ctxfy_rate_limited_total", "scope") == {
        ("read",): 0,
        ("write",): 0,
        ("generate",): 1,
    }
    assert scraped.value("ctxfy_rate_limit_errors_total") == 1
    assert scraped.labelled("ctxfy_llm_requests_total", "provider", "model", "outcome") == {
        ("openai", "gpt-4o-mini", "ok"): 1,
        ("openai", "gpt-4o-mini", "error"): 1,
    }
    assert scraped.labelled("ctxfy_llm_tokens_total", "provider", "model", "direction") == {
        ("openai", "gpt-4o-mini", "input"): 240,
        ("openai", "gpt-4o-mini", "output"): 30,
    }
    assert scraped.value("ctxfy_llm_request_duration_seconds_sum") == pytest.approx(1.7)


async def test_build_info_and_loaded_prompts_are_reported(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    scraped = await scrape(client)

    assert scraped.labelled("ctxfy_build_info", "version") == {(package_version(),): 1}
    assert scraped.value("ctxfy_prompts_loaded") == len(app.state.ctxfy.catalog.current)


def test_every_metrics_object_has_a_registry_of_its_own() -> None:
    first, second = Metrics(version="1"), Metrics(version="2")
    first.rate_limited(Bucket.READ)

    assert Scrape(first.exposition().decode()).value("ctxfy_rate_limited_total") == 1
    assert Scrape(second.exposition().decode()).value("ctxfy_rate_limited_total") == 0


def test_the_multiprocess_directory_is_created_and_emptied_of_value_files_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "prom"
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))
    assert prepare_multiprocess_dir() == directory
    (directory / "counter_123.db").write_bytes(b"stale")
    (directory / "gauge_livemax_123.db").write_bytes(b"stale")
    (directory / "README").write_text("not ours")

    prepare_multiprocess_dir()

    assert sorted(p.name for p in directory.iterdir()) == ["README"]


def test_without_a_multiprocess_directory_there_is_nothing_to_prepare() -> None:
    assert prepare_multiprocess_dir() is None


def test_route_labels_keep_a_bounded_number_of_paths_and_forget_them_all() -> None:
    labels = RouteLabels()
    for index in range(MAX_REMEMBERED):
        labels.remember("GET", f"/made-up/{index}", ("/made-up/{index}", False))

    labels.remember("GET", "/one/more", ("/one/more", False))

    assert labels.get("GET", "/made-up/0") == ("/made-up/{index}", False)
    assert labels.get("GET", "/one/more") is None
    assert labels.get("POST", "/made-up/0") is None
    labels.forget()
    assert labels.get("GET", "/made-up/0") is None
