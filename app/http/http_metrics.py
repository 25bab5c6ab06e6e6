"""HTTP series from prometheus-fastapi-instrumentator, with a label set that cannot grow."""

from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import routing
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp

# Regexes searched in the handler label; probes and scrapes would drown real traffic.
UNINSTRUMENTED = (r"^/metrics$", r"^/health(/|$)")
UNTEMPLATED = "none"  # the instrumentator's label for paths no route matches
# 0.2: the p95 objective is a bucket boundary, so its alert is not interpolated across it.
HTTP_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 5)


class HttpMetricsMiddleware(PrometheusInstrumentatorMiddleware):
    """The instrumentator's pure-ASGI middleware, with a label set that cannot grow.

    Handlers are route templates (``/v1/prompts/{name}``). Everything at or below the MCP
    mount is one handler, so MCP traffic is labelled alike whether a client posts to
    ``/mcp`` or ``/mcp/`` (and the hot MCP path skips route matching). Paths no route
    matches are grouped as ``none``.
    """

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry, mount: str) -> None:
        super().__init__(
            app,
            registry=registry,
            excluded_handlers=UNINSTRUMENTED,
            should_group_untemplated=True,
            latency_lowr_buckets=HTTP_BUCKETS,
        )
        self.mount = mount
        self.mount_prefix = mount + "/"

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        path: str = request.scope["path"]
        if path == self.mount or path.startswith(self.mount_prefix):
            return self.mount, True
        # Not the library's get_route_name(): for a path one slash away from a route
        # (/v1/prompts/x/) it answers the raw path, one new label per path requested.
        routes = getattr(request.scope.get("app"), "routes", None)
        name = routing._get_route_name(request.scope, routes) if routes else None
        return (path, False) if name is None else (name, True)
