"""Telling connected MCP clients that the catalog changed, from outside any request.

FastMCP sends ``list_changed`` notifications only from inside a request, but a reload runs
outside every request. So ``CatalogNotifier`` remembers the connection of each stateful
(handshake-era) session as it initializes, and after a reload that changed the catalog
sends each one ``notifications/prompts/list_changed`` (and ``tools/list_changed`` when a
generation tool changed) on its standalone stream (the session's ``GET``). Clients of the
2026-07-28 revision have no session: they ask with ``subscriptions/listen``, which FastMCP
does not serve, so the notifier serves it (the MCP SDK's ``ListenHandler``) and publishes
the same changes there.

Sending is best-effort: a connection that has gone is skipped, and no client can hold up a
reload for longer than ``send_seconds``. Each process tells its own clients; with several
workers, each reloads and so tells its own.
"""

import weakref

import anyio
import structlog
from fastmcp import FastMCP
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp import types
from mcp.server.connection import Connection
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ToolsListChanged,
)
from mcp.types import SubscriptionsListenRequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from app.services.catalog import CatalogChange
from infrastructure.catalog.catalog import PromptCatalog

logger = structlog.get_logger(__name__)

SEND_SECONDS = 2.0


class CatalogNotifier(Middleware):
    """Tells every open MCP session, and every listen stream, when the catalog changes.

    As FastMCP middleware it sees each ``initialize``; ``catalog_changed`` is the
    ``LiveCatalog.on_change`` listener; ``serve_listen`` registers ``subscriptions/listen``.
    """

    def __init__(self, *, max_listeners: int, send_seconds: float = SEND_SECONDS) -> None:
        self._sessions: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self._bus, max_subscriptions=max_listeners)
        self._send_seconds = send_seconds

    @property
    def sessions(self) -> int:
        """Sessions that would be told of a change now."""
        return len(self._sessions)

    def serve_listen(self, server: FastMCP) -> None:
        """Serve 2026-07-28 ``subscriptions/listen`` on ``server`` (which also makes it
        declare ``listChanged`` to clients of that revision)."""
        server._mcp_server.add_request_handler(  # FastMCP has no API for it; the SDK's own
            "subscriptions/listen", SubscriptionsListenRequestParams, self.listen
        )

    async def on_initialize(
        self,
        context: MiddlewareContext[types.InitializeRequest],
        call_next: CallNext[types.InitializeRequest, types.InitializeResult | None],
    ) -> types.InitializeResult | None:
        result = await call_next(context)
        self._remember(context)
        return result

    def _remember(self, context: MiddlewareContext[types.InitializeRequest]) -> None:
        """Keep the connection of a session that can be told things outside a request."""
        fastmcp_context = context.fastmcp_context
        if fastmcp_context is None:
            return
        try:
            session = fastmcp_context.session
        except RuntimeError:  # no session: nothing to tell later
            return
        # The SDK's per-request ServerSession keeps its connection privately; FastMCP reads
        # it the same way. tests/api/test_mcp_notifications.py pins this to the SDK in use.
        connection = getattr(session, "_connection", None)
        if isinstance(connection, Connection):
            self.remember(connection)

    def remember(self, connection: Connection) -> None:
        """Tell ``connection`` of changes until it closes, if it is a handshake-era one
        with a stream of its own (a stateless or 2026-07-28 one has none)."""
        if (
            not connection.has_standalone_channel
            or connection.protocol_version in MODERN_PROTOCOL_VERSIONS
            or connection in self._sessions
        ):
            return
        self._sessions.add(connection)
        connection.exit_stack.callback(self._sessions.discard, connection)

    async def catalog_changed(
        self, old: PromptCatalog, new: PromptCatalog, change: CatalogChange
    ) -> None:
        """Send the changes to every open session and listen stream; never raises."""
        sessions = list(self._sessions)
        async with anyio.create_task_group() as tasks:
            for connection in sessions:
                tasks.start_soon(self._tell, connection, change.tools_changed)
        await self._bus.publish(PromptsListChanged())
        if change.tools_changed:
            await self._bus.publish(ToolsListChanged())
        logger.info(
            "mcp_clients_notified", sessions=len(sessions), tools_changed=change.tools_changed
        )

    async def _tell(self, connection: Connection, tools_changed: bool) -> None:
        with anyio.move_on_after(self._send_seconds) as waited:
            try:
                await connection.send_prompt_list_changed()
                if tools_changed:
                    await connection.send_tool_list_changed()
            except Exception:  # one client's broken stream must not stop the others
                logger.warning("mcp_notification_failed", exc_info=True)
        if waited.cancelled_caught:
            logger.info("mcp_notification_dropped", reason="slow_client")
