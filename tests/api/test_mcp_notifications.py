"""After a reload that changed the catalog, connected MCP clients are told: a stateful session
on its standalone stream, a 2026-07-28 client on its ``subscriptions/listen`` stream; both
while idle, with no request of theirs in flight.

In-process over HTTP the ASGI transport buffers a ``GET`` stream whole, so delivery to a
session is tested here with the in-memory client, and against uvicorn in
``tests/e2e/test_catalog_notifications.py``; which HTTP sessions get remembered is tested here.
"""

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastmcp import Client
from mcp.client.subscriptions import PromptsListChanged, ToolsListChanged, listen
from mcp.server.connection import Connection
from mcp.shared.dispatcher import CallOptions

from app.http.overload import event_stream
from app.mcp.middleware import MiddlewareLayer
from app.mcp.notifications import CatalogNotifier
from app.services.catalog import CatalogChange, ReloadOutcome, ReloadTrigger
from domain.keys import Scope
from infrastructure.catalog.loader import load_catalog
from tests.api.catalog_files import versioned_app, versioned_prompts, write_version
from tests.api.harness import issue_key, mcp_over_http, serving, state_of
from tests.api.list_changes import PROMPTS_CHANGED, TOOLS_CHANGED, ListChanges
from tests.integration.prompt_files import prompt, write_prompt
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    return versioned_prompts(tmp_path / "prompts")


@pytest.fixture
def app(prompts: Path) -> FastAPI:
    return versioned_app(prompts)


def notifier_of(app: FastAPI) -> CatalogNotifier:
    (layer,) = state_of(app).mcp.middleware
    assert isinstance(layer, MiddlewareLayer)
    (notifier,) = [m for m in layer.parts if isinstance(m, CatalogNotifier)]
    return notifier


async def reload(app: FastAPI) -> None:
    report = await state_of(app).catalog.reload(ReloadTrigger.API)
    assert report.outcome is ReloadOutcome.CHANGED, report.error


def add_prompt_that_does_not_generate(prompts: Path) -> None:
    write_prompt(prompts, prompt(name="wave", title="Wave"), "wave.yaml")


@pytest.mark.parametrize(
    ("change", "told"),
    [
        pytest.param(
            lambda p: write_version(p, "1.2.0"), [PROMPTS_CHANGED, TOOLS_CHANGED], id="tools"
        ),
        pytest.param(add_prompt_that_does_not_generate, [PROMPTS_CHANGED], id="prompts-only"),
    ],
)
async def test_an_idle_session_is_told_the_lists_changed(
    app: FastAPI, prompts: Path, change: Callable[[Path], None], told: list[str]
) -> None:
    changes = ListChanges()
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode="legacy", message_handler=changes) as mcp:
            await mcp.ping()
            change(prompts)
            await reload(app)
            received = await changes.until(len(told))
            listed = [p.name for p in await mcp.list_prompts()]

    assert received == told
    assert ("wave" in listed) == (told == [PROMPTS_CHANGED])


async def test_a_reload_that_changes_nothing_tells_nobody(app: FastAPI) -> None:
    changes = ListChanges()
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode="legacy", message_handler=changes) as mcp:
            report = await state_of(app).catalog.reload(ReloadTrigger.API)
            await mcp.ping()  # a notification sent before this answer would have arrived

    assert report.outcome is ReloadOutcome.UNCHANGED
    assert changes.received == []


async def test_a_modern_client_listening_is_told_the_lists_changed(
    app: FastAPI, prompts: Path
) -> None:
    with anyio.fail_after(10):
        async with (
            Client(state_of(app).mcp, mode="2026-07-28") as mcp,
            listen(mcp.session, prompts_list_changed=True, tools_list_changed=True) as listened,
        ):
            write_version(prompts, "1.2.0")
            await reload(app)
            events = [await anext(listened), await anext(listened)]

    assert events == [PromptsListChanged(), ToolsListChanged()]


async def test_a_modern_client_hears_only_the_changes_it_listens_for(
    app: FastAPI, prompts: Path
) -> None:
    with anyio.fail_after(10):
        async with (
            Client(state_of(app).mcp, mode="2026-07-28") as mcp,
            listen(mcp.session, tools_list_changed=True) as subscription,
        ):
            add_prompt_that_does_not_generate(prompts)
            await reload(app)  # prompts only: nothing for this subscription
            write_version(prompts, "1.2.0")
            await reload(app)
            event = await anext(subscription)

    assert event == ToolsListChanged()


@pytest.mark.parametrize("mode", ["2025-06-18", "2026-07-28"])
async def test_the_server_declares_it_tells_clients_when_lists_change_in_both_eras(
    app: FastAPI, mode: str
) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": mode,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    opening = (
        initialize()
        if mode != "2026-07-28"
        else {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "server/discover",
            "params": {"_meta": meta},
        }
    )
    headers = {**ACCEPT, "mcp-protocol-version": mode, "mcp-method": str(opening["method"])}
    async with serving(app) as client:
        with anyio.fail_after(10):
            response = await client.post("/mcp", json=opening, headers=headers)

    body = response.text.removeprefix("event: message\r\ndata: ").split("\r\n")[0]
    capabilities = json.loads(body)["result"]["capabilities"]
    assert capabilities["prompts"] == {"listChanged": True}
    assert capabilities["tools"] == {"listChanged": True}


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
async def test_only_stateful_handshake_sessions_are_remembered_and_forgotten_when_they_end(
    prompts: Path, stateless: bool
) -> None:
    app = versioned_app(prompts, settings={"mcp_stateless": stateless})
    notifier = notifier_of(app)
    async with serving(app, scope=None):
        key = await issue_key(app, Scope.READ)
        with anyio.fail_after(10):
            async with mcp_over_http(app, key=key, mode="legacy") as legacy:
                await legacy.list_prompts()
                held = notifier.sessions
            async with mcp_over_http(app, key=key, mode="2026-07-28") as modern:
                await modern.list_prompts()
                held_by_modern = notifier.sessions

    assert (held, held_by_modern) == ((0, 0) if stateless else (1, 0))
    assert notifier.sessions == 0  # every session ended with the app: none is kept


async def test_a_session_that_is_gone_does_not_stop_a_reload_or_the_others(
    app: FastAPI, prompts: Path
) -> None:
    staying = ListChanges()
    with anyio.fail_after(10):
        async with Client(state_of(app).mcp, mode="legacy", message_handler=staying) as mcp:
            async with Client(state_of(app).mcp, mode="legacy") as leaving:
                await leaving.ping()
            write_version(prompts, "1.2.0")
            await reload(app)
            received = await staying.until(2)
            await mcp.ping()

    assert received == [PROMPTS_CHANGED, TOOLS_CHANGED]


@pytest.mark.parametrize(
    ("method", "headers", "stream"),
    [
        pytest.param("GET", {}, True, id="session-stream"),
        pytest.param("POST", {"mcp-method": "subscriptions/listen"}, False, id="no-version"),
        pytest.param(
            "POST",
            {"mcp-method": "subscriptions/listen", "mcp-protocol-version": "2025-06-18"},
            False,  # a handshake-era body is never held to its Mcp-Method header
            id="legacy-version",
        ),
        pytest.param(
            "POST",
            {"mcp-method": "tools/call", "mcp-protocol-version": "2026-07-28"},
            False,
            id="modern-call",
        ),
        pytest.param(
            "POST",
            {"mcp-method": "subscriptions/listen", "mcp-protocol-version": "2026-07-28"},
            True,
            id="modern-listen",
        ),
    ],
)
def test_only_event_streams_are_spared_a_request_slot(
    method: str, headers: dict[str, str], stream: bool
) -> None:
    scope = {
        "type": "http",
        "method": method,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }

    assert event_stream(scope) is stream


class Peer:
    """The far end of a session's stream: records what reaches it, or never takes it."""

    def __init__(self, *, stuck: bool = False, broken: bool = False) -> None:
        self.stuck, self.broken = stuck, broken
        self.received: list[str] = []

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise AssertionError("the notifier sends no requests")

    async def notify(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> None:
        if self.broken:
            raise RuntimeError("the stream broke")
        if self.stuck:
            await anyio.sleep_forever()
        self.received.append(method)


def session_to(peer: Peer, version: str = "2025-06-18") -> Connection:
    return Connection(peer, protocol_version=version, session_id="s")


async def test_a_stuck_or_broken_client_cannot_hold_up_a_reload_or_the_others() -> None:
    notifier = CatalogNotifier(max_listeners=1, send_seconds=0.05)
    stuck, broken, fine, modern = Peer(stuck=True), Peer(broken=True), Peer(), Peer()
    # Held here as a session holds its connection: the notifier keeps only weak references.
    connections = [session_to(peer) for peer in (stuck, broken, fine)]
    connections.append(session_to(modern, "2026-07-28"))  # told on listen streams instead
    for connection in connections:
        notifier.remember(connection)
    catalog = load_catalog()

    with anyio.fail_after(5):
        await notifier.catalog_changed(catalog, catalog, CatalogChange(tools_changed=True))

    assert fine.received == [PROMPTS_CHANGED, TOOLS_CHANGED]
    assert (stuck.received, broken.received, modern.received) == ([], [], [])
    assert notifier.sessions == 3
