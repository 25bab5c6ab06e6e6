"""What the running application holds: built once by ``create_app``, read by handlers."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastmcp import FastMCP
from fastmcp.server.http import StarletteWithLifespan, StreamableHTTPASGIApp
from starlette.routing import Route

from app.auth.authenticator import Authenticator
from app.keys import KeyService
from app.settings import Settings
from domain.ports import KeyStore
from infrastructure.catalog.catalog import PromptCatalog


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
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ready: bool = False

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
