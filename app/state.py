"""What the running application holds: built once by ``create_app``, read by handlers."""

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
from fastmcp import FastMCP
from fastmcp.server.http import StarletteWithLifespan, StreamableHTTPASGIApp
from starlette.routing import Route

from app.auth.authenticator import Authenticator
from app.generation import Generator
from app.keys import KeyService
from app.settings import Settings
from domain.health import CheckResult
from domain.ports import KeyStore
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.metrics import Metrics

CHECKS_MAX_AGE = 1.0

type Checks = tuple[CheckResult, ...]


class SharedChecks:
    """The latest dependency checks, shared by every probe for up to ``max_age`` seconds.

    One refresh runs at a time: probes that arrive meanwhile wait for its result instead of
    starting their own, so a probe storm costs one round of checks per ``max_age``.
    """

    def __init__(
        self, *, max_age: float = CHECKS_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self.clock = clock
        self._checks: Checks | None = None
        self._key: Hashable = None
        self._taken_at = 0.0
        self._refreshing: anyio.Event | None = None

    async def get(
        self, refresh: Callable[[], Awaitable[Checks]], *, key: Hashable = None
    ) -> Checks:
        """The cached checks if fresh and taken under ``key``, else those of one ``refresh``."""
        while True:
            checks = self._checks
            if (
                checks is not None
                and self._key == key
                and self.clock() - self._taken_at < self.max_age
            ):
                return checks
            pending = self._refreshing
            if pending is None:
                break
            await pending.wait()
        self._refreshing = done = anyio.Event()
        try:
            checks = await refresh()
            self._checks, self._key, self._taken_at = checks, key, self.clock()
        finally:
            # Also on cancellation: a waiter then takes over the refresh.
            self._refreshing = None
            done.set()
        return checks


@dataclass(slots=True)
class AppState:
    """The application's long-lived parts and its lifecycle flags."""

    settings: Settings
    version: str
    catalog: PromptCatalog
    mcp: FastMCP
    mcp_app: StarletteWithLifespan
    key_store: KeyStore
    authenticator: Authenticator
    keys: KeyService
    metrics: Metrics
    generator: Generator
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ready: bool = False
    # Set when the process has been told to stop: readiness fails so load balancers move
    # traffic away, while requests are still served until the drain period ends.
    draining: bool = False
    health_checks: SharedChecks = field(default_factory=SharedChecks)

    def mcp_transport_running(self) -> bool:
        """Whether the MCP session manager is running and can take requests."""
        for route in self.mcp_app.routes:
            endpoint = getattr(route, "endpoint", None) if isinstance(route, Route) else None
            if isinstance(endpoint, StreamableHTTPASGIApp):
                manager = endpoint.session_manager
                # The SDK exposes no public "running" flag; its task group is set exactly
                # while run() is active, which is when requests can be served.
                return manager is not None and manager._task_group is not None
        return False
