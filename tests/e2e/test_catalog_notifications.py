"""A real ``ctxfy serve`` tells idle MCP clients that its catalog changed: a stateful session
on its event stream (``GET /mcp``), a 2026-07-28 client on its ``subscriptions/listen`` stream,
after ``POST /v1/catalog/reload`` with an admin key; a refused reload tells nobody."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.client.subscriptions import PromptsListChanged, ToolsListChanged, listen

from domain.prompts import VERSION_ARGUMENT
from tests.api.list_changes import PROMPTS_CHANGED, TOOLS_CHANGED, ListChanges
from tests.e2e.server import RunningServer, running_server
from tests.integration.prompt_files import argument, prompt, write_prompt

pytestmark = pytest.mark.anyio

TIMEOUT = 30
NAME = "greet"
GENERATION = {"system_prompt": "You write greetings.", "max_tokens": 64}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_version(directory: Path, version: str, **changes: Any) -> None:
    """``greet`` in ``version`` (it generates), as a file of its own."""
    document = prompt(
        version=version,
        arguments=[argument("who", required=True)],
        messages=[{"role": "user", "content": f"Hello ({version}), {{{{ who }}}}!"}],
        generation=GENERATION,
    )
    write_prompt(directory, document | changes, f"{NAME}-{version}.yaml")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("prompts")
    write_version(directory, "1.0.0")
    return directory


def serve(
    tmp_path_factory: pytest.TempPathFactory, prompts: Path, stateless: bool
) -> Iterator[RunningServer]:
    env = {
        "CTXFY_PROMPTS_DIR": str(prompts),
        "CTXFY_MCP_STATELESS": str(stateless).lower(),
        "CTXFY_DRAIN_SECONDS": "0",
    }
    with running_server(tmp_path_factory.mktemp("notify"), env, scope="admin") as started:
        yield started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, prompts: Path) -> Iterator[RunningServer]:
    """A stateful server (sessions) of the module's prompt files, with an admin key."""
    yield from serve(tmp_path_factory, prompts, stateless=False)


@pytest.fixture(scope="module")
def stateless_server(
    tmp_path_factory: pytest.TempPathFactory, prompts: Path
) -> Iterator[RunningServer]:
    """The same in stateless (scale-out) mode: no sessions, listen streams still."""
    yield from serve(tmp_path_factory, prompts, stateless=True)


class EventStream:
    """Makes the HTTP clients of an MCP transport, and says when its ``GET`` stream opened."""

    def __init__(self) -> None:
        self.opened = anyio.Event()

    def __call__(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
        **_: Any,
    ) -> httpx2.AsyncClient:
        async def seen(response: httpx2.Response) -> None:
            if response.request.method == "GET" and response.status_code == 200:
                self.opened.set()

        return httpx2.AsyncClient(
            headers=headers, timeout=timeout, auth=auth, event_hooks={"response": [seen]}
        )


async def reload(server: RunningServer) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        return await http.post(
            "/v1/catalog/reload", headers={"Authorization": f"Bearer {server.key}"}
        )


async def test_an_idle_session_is_told_when_a_reload_changes_the_catalog(
    server: RunningServer, prompts: Path
) -> None:
    changes, stream = ListChanges(), EventStream()
    transport = StreamableHttpTransport(
        server.mcp_url, auth=server.key, httpx_client_factory=stream
    )
    with anyio.fail_after(TIMEOUT):
        async with Client(transport, mode="legacy", message_handler=changes) as mcp:
            await stream.opened.wait()
            write_version(prompts, "1.1.0")
            reloaded = await reload(server)  # the session is idle: no request in flight
            told = list(await changes.until(2))

            broken = prompts / f"{NAME}-1.2.0.yaml"
            broken.write_text("name: [broken", "utf-8")
            refused = await reload(server)
            broken.unlink()
            listed = {p.name: p for p in await mcp.list_prompts()}
            pinned = await mcp.get_prompt(f"{NAME}@1.0.0", {"who": "Ada"})
            generated = await mcp.list_tools()

    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["added"] == [f"{NAME}@1.1.0"]
    assert told == [PROMPTS_CHANGED, TOOLS_CHANGED]
    assert refused.status_code == 409
    assert changes.received == told  # the refused reload told nobody
    assert (listed[NAME].meta or {})["version"] == "1.1.0"
    assert (pinned.meta or {})["version"] == "1.0.0"
    (tool,) = [t for t in generated if t.name == f"generate_{NAME}"]
    assert tool.input_schema["properties"][VERSION_ARGUMENT]["enum"] == ["1.1.0", "1.0.0"]


@pytest.mark.parametrize(
    ("serving", "version"), [("server", "1.3.0"), ("stateless_server", "1.4.0")]
)
async def test_a_modern_client_listening_is_told_when_a_reload_changes_the_catalog(
    request: pytest.FixtureRequest, serving: str, version: str, prompts: Path
) -> None:
    server: RunningServer = request.getfixturevalue(serving)
    transport = StreamableHttpTransport(server.mcp_url, auth=server.key)
    with anyio.fail_after(TIMEOUT):
        async with Client(transport, mode="2026-07-28") as mcp:
            async with listen(
                mcp.session, prompts_list_changed=True, tools_list_changed=True
            ) as subscription:
                write_version(prompts, version)
                reloaded = await reload(server)
                events = [await anext(subscription), await anext(subscription)]
            listed = {p.name: p for p in await mcp.list_prompts()}

    assert reloaded.status_code == 200, reloaded.text
    assert events == [PromptsListChanged(), ToolsListChanged()]
    assert (listed[NAME].meta or {})["version"] == version


async def test_an_open_listen_stream_holds_no_request_slot(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = {"CTXFY_MAX_CONCURRENT_REQUESTS": "1", "CTXFY_DRAIN_SECONDS": "0"}
    with running_server(tmp_path_factory.mktemp("one-slot"), env) as server:
        transport = StreamableHttpTransport(server.mcp_url, auth=server.key)
        with anyio.fail_after(TIMEOUT):
            async with (
                Client(transport, mode="2026-07-28") as mcp,
                listen(mcp.session, prompts_list_changed=True),
            ):
                listed = await mcp.list_prompts()  # the worker's one slot is free

    assert [p.name for p in listed]
