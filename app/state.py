"""What the running application holds: built once by ``bootstrap``, read by handlers."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import structlog
from fastmcp import FastMCP
from fastmcp.server.http import StarletteWithLifespan

from app.mcp.sessions import McpSessions, sweep_sessions_every
from app.services.authenticator import Authenticator
from app.services.catalog import LiveCatalog
from app.services.catalog_watch import CatalogWatcher
from app.services.generation import DocumentGenerator
from app.services.generation_records import GenerationRecorder
from app.services.health import HealthService, Lifecycle
from app.services.keys import KeyService
from domain.ports import KeyStore
from infrastructure.metrics import Metrics
from infrastructure.rate_limit import KeyRateLimiter

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppState:
    """The application's long-lived parts; frozen, so a part is replaced only by building
    another application (``bootstrap`` takes overrides)."""

    version: str
    started_at: datetime
    catalog: LiveCatalog  # read ``catalog.current`` once per request
    mcp: FastMCP
    mcp_app: StarletteWithLifespan
    sessions: McpSessions
    session_sweep_seconds: float  # how often sessions of keys ended elsewhere are looked for
    key_store: KeyStore
    authenticator: Authenticator
    keys: KeyService
    metrics: Metrics
    rate_limiter: KeyRateLimiter
    generator: DocumentGenerator
    health: HealthService
    lifecycle: Lifecycle
    usage_flush_seconds: float
    client_sampling: bool  # whether generation may ask MCP clients' own LLMs
    # Asks every other worker of this server to reload its catalog (a no-op with one worker).
    reload_siblings: Callable[[], None] = lambda: None
    # Generation records: written by the generator, read by REST and MCP, purged here.
    recorder: GenerationRecorder | None = None
    record_retention: timedelta = timedelta(days=30)
    record_purge_seconds: float = 3600.0
    # Reloads the catalog when a prompt file changes (CTXFY_PROMPTS_WATCH); None: off.
    catalog_watcher: CatalogWatcher | None = None
    # Adapters holding connections (the server LLM's HTTP client, Redis), released at shutdown.
    on_close: tuple[Callable[[], Awaitable[None]], ...] = ()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run every part that has a lifetime, ready to serve inside the block."""
        await self.key_store.start()
        if self.client_sampling:
            # The SDK warns on every legacy sampling call; the operator is told once, here.
            logger.info(
                "client_sampling_deprecated",
                detail="MCP sampling is deprecated by the 2026-07-28 revision (SEP-2577) and "
                "may be removed from 2027-07-28; configure a server-side LLM "
                "(CTXFY_LLM_BASE_URL) to keep generating once clients drop it",
            )
        try:
            # The MCP app's lifespan runs its session manager; without it every MCP
            # request fails with "Task group is not initialized".
            async with self.mcp_app.lifespan(self.mcp_app), anyio.create_task_group() as tasks:
                self.sessions.apply_limits()
                tasks.start_soon(self.keys.flush_usage_every, self.usage_flush_seconds)
                if self.sessions.stateful:
                    tasks.start_soon(
                        sweep_sessions_every,
                        self.sessions,
                        self.keys,
                        self.session_sweep_seconds,
                    )
                if self.catalog_watcher is not None:
                    tasks.start_soon(self.catalog_watcher.run)
                if self.recorder is not None and self.recorder.records is not None:
                    tasks.start_soon(
                        self.recorder.purge_every, self.record_retention, self.record_purge_seconds
                    )
                self.lifecycle.ready = True
                try:
                    yield
                finally:
                    self.lifecycle.ready = False
                    if self.catalog_watcher is not None:
                        # Cancelling alone would wait out the watch thread's 5 s timeout.
                        self.catalog_watcher.stop()
                    tasks.cancel_scope.cancel()
        finally:
            self.metrics.close()
            for close in self.on_close:
                await close()
            await self.keys.flush_usage()
            await self.key_store.close()
