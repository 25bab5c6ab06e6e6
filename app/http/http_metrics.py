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
MAX_REMEMBERED = 4096  # requested paths whose label is kept; clients choose paths


class RouteLabels:
    """The handler label of each (method, path) requested, found once per route set.

    The instrumentator matches every request against every route before the router does
    the same again (a tenth of a REST request's time, measured). ``forget`` must be called
    whenever the routes change. At most ``MAX_REMEMBERED`` paths are kept, so paths a
    client makes up cannot grow it; beyond that, labels are found each time.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], tuple[str, bool]] = {}

    def get(self, method: str, path: str) -> tuple[str, bool] | None:
        """The label remembered for this request, if any."""
        return self._known.get((method, path))

    def remember(self, method: str, path: str, label: tuple[str, bool]) -> None:
        """Keep ``label`` for this request, while there is room."""
        if len(self._known) < MAX_REMEMBERED:
            self._known[(method, path)] = label

    def forget(self) -> None:
        """The routes changed: find every label again."""
        self._known.clear()


class HttpMetricsMiddleware(PrometheusInstrumentatorMiddleware):
    """The instrumentator's pure-ASGI middleware, with a label set that cannot grow.

    Handlers are route templates (``/v1/prompts/{name}``). Everything at or below the MCP
    mount is one handler, so MCP traffic is labelled alike whether a client posts to
    ``/mcp`` or ``/mcp/`` (and the hot MCP path skips route matching). Paths no route
    matches are grouped as ``none``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry,
        mount: str,
        labels: RouteLabels | None = None,
    ) -> None:
        super().__init__(
            app,
            registry=registry,
            excluded_handlers=UNINSTRUMENTED,
            should_group_untemplated=True,
            latency_lowr_buckets=HTTP_BUCKETS,
        )
        self.mount = mount
        self.mount_prefix = mount + "/"
        self.labels = labels if labels is not None else RouteLabels()

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        path: str = request.scope["path"]
        if path == self.mount or path.startswith(self.mount_prefix):
            return self.mount, True
        method: str = request.scope["method"]
        known = self.labels.get(method, path)
        if known is not None:
            return known
        # Not the library's get_route_name(): for a path one slash away from a route
        # (/v1/prompts/x/) it answers the raw path, one new label per path requested.
        routes = getattr(request.scope.get("app"), "routes", None)
        name = routing._get_route_name(request.scope, routes) if routes else None
        label = (path, False) if name is None else (name, True)
        self.labels.remember(method, path, label)
        return label
