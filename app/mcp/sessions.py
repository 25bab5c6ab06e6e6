"""The stateful MCP sessions of this process, by the key that opened them.

The MCP SDK's session manager already binds each session to the credential that opened it
(our ``AccessToken`` names the key id as its ``client_id``), caps the sessions of a process
(``max_sessions``, answered 503) and closes idle ones (``session_idle_timeout``). What it
lacks is a view by key: how many sessions one key holds, and closing all of a key's sessions
when the key stops being valid. The SDK offers no public API for either, so this adapter reads
its two session tables and uses its own discard routine, in this one place; the tests in
``tests/api/test_mcp_sessions.py`` pin that behaviour to the SDK version the lock holds.
"""

from collections import Counter

import anyio
import structlog
from fastmcp.server.http import StarletteWithLifespan, StreamableHTTPASGIApp
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.routing import Route

from app.services.keys import KeyService
from domain.ports import KeyStoreUnavailable

logger = structlog.get_logger(__name__)


def session_manager(mcp_app: StarletteWithLifespan) -> StreamableHTTPSessionManager | None:
    """The streamable-HTTP session manager inside ``mcp_app``, if it has one."""
    for route in mcp_app.routes:
        endpoint = getattr(route, "endpoint", None) if isinstance(route, Route) else None
        if isinstance(endpoint, StreamableHTTPASGIApp):
            return endpoint.session_manager
    return None


class McpSessions:
    """Counts and closes the stateful sessions of one MCP app, per key id.

    FastMCP builds the session manager when the app's lifespan starts (a new one per run),
    so it is looked up on each use, and the process cap applied to the one found.
    """

    def __init__(
        self, mcp_app: StarletteWithLifespan, *, stateless: bool, max_sessions: int
    ) -> None:
        self._mcp_app = mcp_app
        self.stateful = not stateless
        self._max_sessions = max_sessions

    def _manager(self) -> StreamableHTTPSessionManager | None:
        if not self.stateful:
            return None
        manager = session_manager(self._mcp_app)
        if manager is not None:
            manager.max_sessions = self._max_sessions
        return manager

    def apply_limits(self) -> None:
        """Set the process cap on the running session manager (before any request)."""
        self._manager()

    def _owners(self) -> dict[str, str]:
        """Session id → the key id that opened it."""
        manager = self._manager()
        if manager is None:
            return {}
        return {sid: owner["client_id"] for sid, owner in manager._session_owners.items()}

    def count(self) -> int:
        """Open sessions in this process."""
        manager = self._manager()
        return 0 if manager is None else len(manager._server_instances)

    def by_key(self) -> Counter[str]:
        """Open sessions per key id."""
        return Counter(self._owners().values())

    def held_by(self, key_id: str) -> int:
        """How many sessions ``key_id`` holds open."""
        return self.by_key()[key_id]

    async def close_key(self, key_id: str, reason: str) -> int:
        """Close every session ``key_id`` opened, and its open streams; how many there were.

        From the moment this is called each of those session ids answers 404.
        """
        manager = self._manager()
        if manager is None:
            return 0
        doomed = [session_id for session_id, owner in self._owners().items() if owner == key_id]
        for session_id in doomed:
            transport = manager._server_instances.get(session_id)
            if transport is not None:
                await manager._discard_session(session_id, transport)
        if doomed:
            logger.info("mcp_sessions_closed", key_id=key_id, sessions=len(doomed), reason=reason)
        return len(doomed)


async def close_sessions_of_ended_keys(sessions: McpSessions, keys: KeyService) -> int:
    """Ask the store whether the keys holding sessions are still active, and close the
    sessions of those that are not: keys revoked by another process (or the CLI), or
    expired, such as a rotated key at the end of its grace. How many sessions closed."""
    held = list(sessions.by_key())
    if not held:
        return 0
    try:
        ended = await keys.ended_of(held)
    except KeyStoreUnavailable:
        logger.warning("mcp_session_sweep_skipped", reason="key_store_unavailable")
        return 0
    return sum([await sessions.close_key(key_id, reason="key_ended") for key_id in ended])


async def sweep_sessions_every(sessions: McpSessions, keys: KeyService, seconds: float) -> None:
    """``close_sessions_of_ended_keys`` every ``seconds``, forever."""
    while True:
        await anyio.sleep(seconds)
        await close_sessions_of_ended_keys(sessions, keys)
